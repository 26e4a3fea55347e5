"""The coordinator's live state as Prometheus metric families, read at each scrape."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ishan_tools.breaker import CircuitState
from ishan_tools.infer.coordinator.registry import Registry
from ishan_tools.infer.metrics import gauge


def coordinator_gauges(registry: Registry) -> list[Metric]:
    """Sessions, KV and every worker's health and breaker state, read at each scrape; a
    worker's families carry its `model`, and each known model its live worker count."""
    workers = registry.describe()
    per_worker = {
        "healthy": ("ishan_infer_worker_healthy", "1 when the worker takes new sessions."),
        "sessions": ("ishan_infer_worker_sessions", "Sessions open on the worker."),
        "kv_used_bytes": ("ishan_infer_worker_kv_used_bytes", "KV reserved on the worker."),
        "kv_capacity_bytes": ("ishan_infer_worker_kv_capacity_bytes", "Worker KV capacity."),
    }
    families: list[Metric] = [
        gauge("ishan_infer_sessions_active", "Sessions open now.", registry.total_sessions),
        gauge(
            "ishan_infer_kv_used_bytes", "KV reserved by open sessions.", registry.total_kv_bytes
        ),
        gauge(
            "ishan_infer_kv_capacity_bytes",
            "KV capacity of the healthy workers.",
            sum(w["kv_capacity_bytes"] for w in workers if w["healthy"]),
        ),
    ]
    for key, (name, doc) in per_worker.items():
        family = GaugeMetricFamily(name, doc, labels=["worker", "model"])
        for w in workers:
            family.add_metric([w["worker_id"], w["model"]], float(w[key]))
        families.append(family)
    breaker = GaugeMetricFamily(
        "ishan_infer_worker_breaker_state",
        "1 for the circuit breaker's current state of each worker.",
        labels=["worker", "model", "state"],
    )
    for w in workers:
        for state in CircuitState:
            value = float(w["breaker"] == state.value)
            breaker.add_metric([w["worker_id"], w["model"], state.value], value)
    families.append(breaker)
    slow = CounterMetricFamily(
        "ishan_infer_worker_breaker_slow_calls",
        "Calls to each worker whose first token came later than --breaker-slow-first-token.",
        labels=["worker", "model"],
    )
    for w in workers:
        slow.add_metric([w["worker_id"], w["model"]], w["breaker_slow_calls"])
    families.append(slow)
    models = GaugeMetricFamily(
        "ishan_infer_model_workers",
        "Workers of each known model that take new sessions now.",
        labels=["model"],
    )
    for model, count in registry.live_workers().items():
        models.add_metric([model], float(count))
    families.append(models)
    affinity = registry.affinity
    routed = CounterMetricFamily(
        "ishan_infer_routing_affinity",
        "Requests with a leading-text key, by the worker that took them: its owner "
        "(followed) or, the owner being too busy or failing, another (overridden).",
        labels=["outcome"],
    )
    for outcome, count in affinity.routed.items():
        routed.add_metric([outcome], count)
    families.append(routed)
    return families
