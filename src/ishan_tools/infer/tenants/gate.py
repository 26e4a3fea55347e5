"""The coordinator's door for tenants: who is calling, may they, and what did they use.

`Gate` holds the tenants file's tenants (`TenantBook`), their quotas (`Quotas`) and their
usage. `identify` knows a client by its key (401 otherwise); `admit` checks a request
against its tenant's limits and takes one of its sessions, handing back a `Ticket` that the
stream keeps until it ends: then the session is given back and the worker's token count is
charged and counted. `reload` (on SIGHUP) reads the file again; a file that cannot be used
keeps the tenants in use, and one log line says why. Sessions running meanwhile keep their
tickets: a stream is never dropped by a reload.

Usage per tenant (requests, prompt and completion tokens, refusals by reason) is counted
here in this process, for `/metrics` and `GET /coordinator/usage`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ishan_tools.infer.errors import BadRequest, RelayError, UnknownModel
from ishan_tools.infer.events import Done, Event, Token
from ishan_tools.infer.tenants.book import Tenant, TenantBook, TenantsError, load
from ishan_tools.infer.tenants.quotas import LocalQuotas, QuotaExceeded, Quotas

log = logging.getLogger(__name__)


class Unauthorized(RelayError):
    """No key, or one no tenant holds (401)."""

    def __init__(self) -> None:
        super().__init__(401, "missing or wrong API key")


@dataclass
class TenantUsage:
    """What one tenant used through this coordinator since it started."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    refusals: Counter[str] = field(default_factory=Counter)  # by reason


@dataclass
class Ticket:
    """One admitted request of a tenant: its session, and the tokens its stream used."""

    gate: Gate
    tenant: Tenant
    tokens_seen: int = 0  # tokens relayed, for a stream that ends without the worker's count
    done: Done | None = None
    closed: bool = False

    def observe(self, event: Event) -> None:
        """Count a relayed event: a token, or the worker's own count at the end."""
        if isinstance(event, Token):
            self.tokens_seen += 1
        elif isinstance(event, Done):
            self.done = event

    async def close(self) -> None:
        """Give the session back and charge what the stream used (once)."""
        if self.closed:
            return
        self.closed = True
        gate, tenant = self.gate, self.tenant
        prompt, completion = (
            (self.done.prompt_tokens, self.done.completion_tokens)
            if self.done is not None
            else (0, self.tokens_seen)
        )
        usage = gate.usage_of(tenant)
        usage.prompt_tokens += prompt
        usage.completion_tokens += completion
        try:
            await gate.quotas.charge(tenant, prompt + completion)
        finally:
            await gate.quotas.release(tenant)


class Gate:
    """Tenants, their quotas and their usage, for one coordinator."""

    def __init__(self, path: Path, quotas: Quotas | None = None) -> None:
        self.path = path
        self.book = TenantBook(load(path))
        self.quotas: Quotas = quotas or LocalQuotas()
        self.usage: dict[str, TenantUsage] = {}
        self.unauthorized = 0

    def reload(self) -> bool:
        """Read the tenants file again; on any problem keep the tenants in use."""
        try:
            book = TenantBook(load(self.path))
        except TenantsError as exc:
            log.error(
                "tenants not reloaded, keeping the %d in use: %s", len(self.book.tenants), exc
            )
            return False
        self.book = book
        log.info("tenants reloaded from %s: %d tenants", self.path, len(book.tenants))
        return True

    def usage_of(self, tenant: Tenant) -> TenantUsage:
        usage = self.usage.get(tenant.name)
        if usage is None:
            usage = self.usage[tenant.name] = TenantUsage()
        return usage

    def identify(self, authorization: str | None) -> Tenant:
        """The calling tenant (raises Unauthorized)."""
        tenant = self.book.identify(authorization)
        if tenant is None:
            self.unauthorized += 1
            raise Unauthorized()
        return tenant

    def refuse(self, tenant: Tenant, reason: str) -> None:
        self.usage_of(tenant).refusals[reason] += 1

    def check_model(self, tenant: Tenant, asked: str | None, model: str | None) -> None:
        """Raise UnknownModel (404) when the tenant may not use the model that would answer
        (`model`, the known model `asked` resolves to; while one model is served, any name
        resolves to it)."""
        target = model if model is not None else asked  # the model that would answer
        if not tenant.may_use(target):
            self.refuse(tenant, "model")
            raise UnknownModel(asked or "")

    def check_max_tokens(self, tenant: Tenant, max_tokens: int) -> None:
        cap = tenant.max_tokens
        if cap is not None and max_tokens > cap:
            self.refuse(tenant, "max_tokens")
            raise BadRequest(f"'max_tokens' is {max_tokens}, over this key's cap of {cap}")

    async def admit(self, tenant: Tenant) -> Ticket:
        """Take one of the tenant's sessions (raises QuotaExceeded, counted)."""
        try:
            await self.quotas.acquire(tenant)
        except QuotaExceeded as exc:
            self.refuse(tenant, exc.kind)
            raise
        return Ticket(self, tenant)

    async def report(self) -> dict[str, Any]:
        """Every tenant's usage and current load (`GET /coordinator/usage`)."""
        tenants: dict[str, Any] = {}
        for tenant in self.book.tenants:
            usage = self.usage_of(tenant)
            sessions, tokens = await self.quotas.load(tenant)
            tenants[tenant.name] = {
                "requests": usage.requests,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "refusals": dict(sorted(usage.refusals.items())),
                "sessions": sessions,
                "tokens_last_minute": tokens,
                "limits": {
                    "max_sessions": tenant.max_sessions,
                    "tokens_per_minute": tenant.tokens_per_minute,
                    "max_tokens": tenant.max_tokens,
                    "weight": tenant.weight,
                    "models": list(tenant.models) if tenant.models is not None else None,
                },
            }
        return {"tenants": tenants}
