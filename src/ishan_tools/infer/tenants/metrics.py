"""Each tenant's usage as Prometheus counters, labelled by the tenant's name (never a key),
and, with quotas kept in Redis (`--state`), whether the limits are shared now."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ishan_tools.infer.tenants.gate import Gate
from ishan_tools.infer.tenants.quotas import SharedState

REFUSALS = ("sessions", "tokens", "max_tokens", "model")


def tenant_metrics(gate: Gate | None) -> list[Metric]:
    """Requests, tokens and refusals per tenant of the tenants file (none without one)."""
    if gate is None:
        return []
    requests = CounterMetricFamily(
        "ishan_infer_tenant_requests",
        "Generation requests a tenant's key made, refused ones included.",
        labels=["tenant"],
    )
    prompt = CounterMetricFamily(
        "ishan_infer_tenant_prompt_tokens",
        "Prompt tokens the workers read for a tenant.",
        labels=["tenant"],
    )
    completion = CounterMetricFamily(
        "ishan_infer_tenant_completion_tokens",
        "Tokens generated for a tenant.",
        labels=["tenant"],
    )
    refusals = CounterMetricFamily(
        "ishan_infer_tenant_refusals",
        "A tenant's requests refused by its limits: sessions or tokens (429), max_tokens "
        "(400), model (404).",
        labels=["tenant", "reason"],
    )
    for tenant in gate.book.tenants:
        usage = gate.usage_of(tenant)
        requests.add_metric([tenant.name], usage.requests)
        prompt.add_metric([tenant.name], usage.prompt_tokens)
        completion.add_metric([tenant.name], usage.completion_tokens)
        for reason in REFUSALS:
            refusals.add_metric([tenant.name, reason], usage.refusals[reason])
    unauthorized = CounterMetricFamily(
        "ishan_infer_unauthorized_requests",
        "Requests with no key or a key no tenant holds (401).",
        value=gate.unauthorized,
    )
    return [requests, prompt, completion, refusals, unauthorized, *state_metrics(gate)]


def state_metrics(gate: Gate) -> list[Metric]:
    """With `--state`: 1 while the limits hold across coordinators, and the fallbacks to
    this coordinator's own (Redis away); nothing without."""
    quotas = gate.quotas
    if not isinstance(quotas, SharedState):
        return []
    shared = GaugeMetricFamily(
        "ishan_infer_tenant_state_shared",
        "1 while the tenants' limits are kept in --state, shared with the other "
        "coordinators; 0 while Redis is away and this coordinator enforces them alone.",
        value=int(quotas.shared),
    )
    fallbacks = CounterMetricFamily(
        "ishan_infer_tenant_state_fallbacks",
        "Times Redis (--state) could not be reached and the limits fell back to this "
        "coordinator alone.",
        value=quotas.fallbacks,
    )
    return [shared, fallbacks]
