"""The tenants file: who may use a coordinator, with which keys, under which limits.

A TOML file with one table per tenant (`ishan infer tenants add` writes it):

    [tenants.research]
    keys = ["sha256:9f86d0...15b0f00a08"]   # SHA-256 of each key, never the key itself
    max_sessions = 4            # concurrent sessions
    tokens_per_minute = 20000   # prompt plus completion tokens over the last 60 s
    max_tokens = 512            # the most a request may ask for
    weight = 2                  # its share of the slots under contention (default 1)
    models = ["smollm2"]        # the models it may use (default: all)
    cache_group = "lab"         # tenants of one group share prefix cache (default: its own)
    admin = false               # may read GET /coordinator/usage

A limit left out is no limit. The file is checked whole: an unknown field, a key that is
not a hash (a plaintext key pasted in), a hash two tenants share, or a bad value refuses the
whole file with one line naming the place, so a typo never silently lifts a limit.

A client is known by its bearer key: `TenantBook.identify` hashes it (SHA-256) and
compares the digest with every digest in the file, each with `hmac.compare_digest` and
none skipped, so the time taken tells nothing of which digest, or how much of one, matched.
Only digests are held, and keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ishan_tools.errors import UsageError
from ishan_tools.infer.protocol import WEIGHTS

KEY_PREFIX = "ishan-"  # every key `tenants add` makes starts so, which tells a pasted key
HASH_PREFIX = "sha256:"
_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LIMITS = ("max_sessions", "tokens_per_minute", "max_tokens")
_FIELDS = {"keys", *_LIMITS, "weight", "models", "cache_group", "admin"}


class TenantsError(UsageError):
    """The tenants file cannot be used (the message names the file and the place)."""


@dataclass(frozen=True)
class Tenant:
    """One tenant and its limits (None: no limit; `models` None: every model)."""

    name: str
    keys: tuple[str, ...] = ()  # "sha256:<hex>" digests of its keys
    max_sessions: int | None = None
    tokens_per_minute: int | None = None
    max_tokens: int | None = None
    weight: float = 1.0
    models: tuple[str, ...] | None = None
    cache_group: str | None = None  # None: a group of its own
    admin: bool = False

    @property
    def group(self) -> str:
        """The prefix-cache group its sessions reuse KV within."""
        return f"group:{self.cache_group}" if self.cache_group else f"tenant:{self.name}"

    def may_use(self, model: str | None) -> bool:
        return self.models is None or model in self.models

    def to_toml(self) -> dict[str, Any]:
        """The fields that differ from the defaults, as the file holds them."""
        table: dict[str, Any] = {"keys": list(self.keys)}
        for name in _LIMITS:
            if getattr(self, name) is not None:
                table[name] = getattr(self, name)
        if self.weight != 1.0:
            weight = float(self.weight)
            table["weight"] = int(weight) if weight.is_integer() else weight
        if self.models is not None:
            table["models"] = list(self.models)
        if self.cache_group is not None:
            table["cache_group"] = self.cache_group
        if self.admin:
            table["admin"] = True
        return table


def new_key() -> str:
    """A fresh random key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What the tenants file stores for `key`."""
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str) -> str:
    """`name` when it can name a tenant (letters, digits, `_.-`; at most 64)."""
    if not _NAME.fullmatch(name):
        raise TenantsError(
            f"bad tenant name {name!r}: use letters, digits, '_', '.' or '-' (at most 64, "
            "starting with a letter or digit)"
        )
    return name


def _positive_int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TenantsError(f"{where} must be a whole number of at least 1, not {value!r}")
    return value


def _tenant(name: str, table: Any, where: str) -> Tenant:
    if not isinstance(table, dict):
        raise TenantsError(f"{where} must be a table ([tenants.{name}])")
    unknown = sorted(set(table) - _FIELDS)
    if unknown:
        raise TenantsError(
            f"{where} has an unknown field {unknown[0]!r} (known: {', '.join(sorted(_FIELDS))})"
        )
    keys = table.get("keys", [])
    if not isinstance(keys, list) or not keys:
        raise TenantsError(f"{where}.keys must list at least one key hash")
    for i, digest in enumerate(keys):
        if not isinstance(digest, str) or not _HASH.fullmatch(digest):
            plain = isinstance(digest, str) and not digest.startswith(HASH_PREFIX)
            raise TenantsError(
                f"{where}.keys[{i}] is not a SHA-256 hash ('sha256:' and 64 hex digits)"
                + (
                    ": a key itself never goes in the file; make one with `ishan infer tenants add`"
                    if plain
                    else ""
                )
            )
    limits = {k: _positive_int(f"{where}.{k}", table[k]) for k in _LIMITS if k in table}
    weight = table.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise TenantsError(f"{where}.weight must be a number, not {weight!r}")
    low, high = WEIGHTS
    if not (math.isfinite(weight) and low <= weight <= high):
        raise TenantsError(f"{where}.weight must be between {low:g} and {high:g}, not {weight!r}")
    models = table.get("models")
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)
    ):
        raise TenantsError(f"{where}.models must be a list of model names")
    group = table.get("cache_group")
    if group is not None and (not isinstance(group, str) or not _NAME.fullmatch(group)):
        raise TenantsError(f"{where}.cache_group must be a name (letters, digits, '_.-')")
    admin = table.get("admin", False)
    if not isinstance(admin, bool):
        raise TenantsError(f"{where}.admin must be true or false")
    return Tenant(
        name=name,
        keys=tuple(keys),
        weight=float(weight),
        models=None if models is None else tuple(models),
        cache_group=group,
        admin=admin,
        **limits,
    )


def parse(text: str, source: str = "tenants file") -> list[Tenant]:
    """The tenants in a TOML document (raises TenantsError naming `source`)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TenantsError(f"{source}: not valid TOML: {exc}") from exc
    extra = sorted(set(document) - {"tenants"})
    if extra:
        raise TenantsError(f"{source}: unknown table or field {extra[0]!r} (only [tenants.NAME])")
    tables = document.get("tenants", {})
    if not isinstance(tables, dict):
        raise TenantsError(f"{source}: 'tenants' must be tables: [tenants.NAME]")
    tenants: list[Tenant] = []
    owners: dict[str, str] = {}
    for name, table in tables.items():
        where = f"{source}: tenants.{name}"
        try:
            check_name(name)
        except TenantsError as exc:
            raise TenantsError(f"{source}: {exc}") from None
        tenant = _tenant(name, table, where)
        for digest in tenant.keys:
            if digest in owners:
                raise TenantsError(f"{where}: a key hash also listed by tenant {owners[digest]!r}")
            owners[digest] = name
        tenants.append(tenant)
    return tenants


def load(path: Path) -> list[Tenant]:
    """The tenants in the file at `path` (raises TenantsError)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TenantsError(f"cannot read the tenants file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TenantsError(f"{path}: not UTF-8 text") from exc
    return parse(text, str(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    return repr(value)


HEADER = (
    "# ishan infer tenants: one [tenants.NAME] table per tenant; keys are SHA-256 hashes.\n"
    "# Written by `ishan infer tenants`; see docs/infer/tenants.md for every field.\n"
)


def dump(tenants: list[Tenant]) -> str:
    """The tenants file's text for `tenants` (parse(dump(t)) == t)."""
    parts = [HEADER]
    for tenant in tenants:
        lines = [f"\n[tenants.{tenant.name}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in tenant.to_toml().items()]
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def save(path: Path, tenants: list[Tenant]) -> None:
    """Write the file atomically (a reader never sees half of it), readable by its owner."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dump(tenants), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


@dataclass
class TenantBook:
    """The tenants a coordinator knows, looked up by the client's key."""

    tenants: list[Tenant] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._digests = [(d.encode(), t) for t in self.tenants for d in t.keys]
        self.by_name = {t.name: t for t in self.tenants}

    def identify(self, authorization: str | None) -> Tenant | None:
        """The tenant whose key the `Authorization: Bearer KEY` header carries (None: none)."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        digest = hash_key(authorization[len("Bearer ") :]).encode()
        found: Tenant | None = None
        for known, tenant in self._digests:
            if hmac.compare_digest(known, digest):
                found = tenant
        return found
