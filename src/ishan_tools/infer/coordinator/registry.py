"""The coordinator's view of its workers: heartbeats, live load, breakers and admission.

Workers register with their first heartbeat and stay listed; one that misses three
heartbeats in a row is out of rotation until the next arrives. Several coordinators may
share the workers, so a worker's load is what the worker last reported (every heartbeat,
and the headers of every `/worker/generate` answer: the sessions and KV of every
coordinator's clients) plus what this coordinator opened or closed on it since: close to
the truth between heartbeats, exact when one coordinator routes alone. The coordinator's
own sessions are counted too (`sessions`, `kv_used_bytes`, and the totals), for its
metrics and to free each reservation exactly once.

Models: each worker serves one model under a name (its heartbeat's `model`; its file name,
`model_file`, is an alias). A model is known from the first heartbeat naming it until the
coordinator restarts; `model_for` maps a request's `model` to a known one (any name while
exactly one model has ever been known).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ishan_tools.breaker import CircuitBreaker, CircuitState
from ishan_tools.infer.config import CoordinatorSettings
from ishan_tools.infer.coordinator.affinity import Affinity
from ishan_tools.infer.coordinator.scheduler import WorkerLoad
from ishan_tools.infer.errors import BadRequest, UnknownModel, WorkerConflict, WorkerRefused
from ishan_tools.infer.protocol import KV_USED_HEADER, SESSIONS_HEADER

MISSED_HEARTBEATS = 3
LOAD_FIELDS = ("sessions", "kv_used_bytes")  # in heartbeats
LOAD_HEADERS = (SESSIONS_HEADER, KV_USED_HEADER)  # on every /worker/generate answer


@dataclass
class WorkerRecord:
    worker_id: str
    url: str
    model: str
    n_ctx: int
    max_sessions: int
    kv_capacity_bytes: int
    session_kv_bytes: int
    heartbeat_interval: float
    last_heartbeat: float
    breaker: CircuitBreaker
    slots: int = 0
    boot_id: str = ""
    sessions: int = 0
    kv_used_bytes: int = 0
    in_rotation: bool = True
    model_file: str = ""  # the GGUF file's name, an alias of `model`
    reported: dict[str, Any] = field(default_factory=dict)
    seen: tuple[int, int] = (0, 0)  # sessions, KV bytes the worker last reported
    own_at_seen: tuple[int, int] = (0, 0)  # our own sessions, KV bytes at that moment

    def observe(self, sessions: int, kv_used_bytes: int) -> None:
        """The worker's own count of its load (all coordinators' sessions), just reported."""
        self.seen = (sessions, kv_used_bytes)
        self.own_at_seen = (self.sessions, self.kv_used_bytes)

    def load_now(self) -> tuple[int, int]:
        """Sessions and KV bytes on the worker: its report plus our changes since."""
        sessions = self.seen[0] + self.sessions - self.own_at_seen[0]
        kv_bytes = self.seen[1] + self.kv_used_bytes - self.own_at_seen[1]
        return max(sessions, self.sessions), max(kv_bytes, self.kv_used_bytes)

    def alive(self, now: float) -> bool:
        return now - self.last_heartbeat <= MISSED_HEARTBEATS * self.heartbeat_interval

    def routable(self, now: float) -> bool:
        return self.alive(now) and self.breaker.state is not CircuitState.OPEN

    def load(self) -> WorkerLoad:
        sessions, kv_bytes = self.load_now()
        return WorkerLoad(
            self.worker_id,
            sessions,
            self.max_sessions,
            kv_bytes,
            self.kv_capacity_bytes,
            self.session_kv_bytes,
            self.slots,
        )


MAX_HEARTBEAT_INTERVAL = 3600.0  # seconds; a worker is alive for 3 of them after a beat
MAX_TEXT = 256  # characters in a worker id, model name or boot id
MAX_URL = 2048
PROBE_TIMEOUT_S = 2.0  # asking a known worker whether it still runs


def _text(payload: dict[str, Any], key: str, *, default: str | None = None) -> str:
    value = payload.get(key, default)
    if not isinstance(value, str) or len(value) > MAX_TEXT or (default is None and not value):
        raise BadRequest(
            f"heartbeat field '{key}' must be a non-empty string of at most {MAX_TEXT} characters"
        )
    return value


def _count(payload: dict[str, Any], key: str, *, low: int = 1, default: int | None = None) -> int:
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < 2**63:
        what = "a positive integer" if low == 1 else f"an integer of at least {low}"
        raise BadRequest(f"heartbeat field '{key}' must be {what}, got {value!r}")
    return value


def _interval(payload: dict[str, Any]) -> float:
    value = payload.get("heartbeat_interval")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_HEARTBEAT_INTERVAL
    ):
        raise BadRequest(
            "heartbeat field 'heartbeat_interval' must be a number of seconds above 0 and at "
            f"most {MAX_HEARTBEAT_INTERVAL:g}, got {value!r}"
        )
    return float(value)


def _url(payload: dict[str, Any]) -> str:
    value = payload.get("url")
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise BadRequest(f"heartbeat field 'url' must be a string of at most {MAX_URL} characters")
    problem = ""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        problem = "a valid URL"
    if not problem:
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "an http:// or https:// URL with a host"
        elif parts.query or parts.fragment or parts.username or parts.password:
            problem = "a URL without user, query or fragment"
        elif port == 0:
            problem = "a URL with a port above 0"
    if problem:
        raise BadRequest(f"heartbeat field 'url' must be {problem}, got {value[:80]!r}")
    return value.rstrip("/")


class Registry:
    """Workers by id, plus the counters admission control reads."""

    def __init__(
        self, settings: CoordinatorSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.clock = clock
        self.workers: dict[str, WorkerRecord] = {}
        self.total_sessions = 0
        self.total_kv_bytes = 0
        self.affinity = Affinity()
        self.models: dict[str, str] = {}  # every name a model was ever known by -> its name

    def heartbeat(self, payload: Any, *, replace: bool = False) -> WorkerRecord:
        """Register or refresh a worker from its heartbeat.

        Raises BadRequest for a malformed field (every one is checked: positive sizes, a
        finite interval, an http(s) URL), and WorkerConflict for a heartbeat that names a
        live worker with another URL or boot id: a worker's traffic goes nowhere else while
        it beats. `replace`: the known worker is gone (`still_there` said so), take this one.
        """
        if not isinstance(payload, dict):
            raise BadRequest("a heartbeat must be a JSON object")
        worker_id = _text(payload, "worker_id")
        limits = self.limits
        values: dict[str, Any] = {
            "url": _url(payload),
            "model": _text(payload, "model"),
            "model_file": _text(payload, "model_file", default=""),
            "n_ctx": _count(payload, "n_ctx"),
            "max_sessions": min(_count(payload, "max_sessions"), limits.max_sessions_per_worker),
            "kv_capacity_bytes": min(
                _count(payload, "kv_capacity_bytes"), limits.max_kv_per_worker_bytes
            ),
            "session_kv_bytes": _count(payload, "session_kv_bytes"),
            "heartbeat_interval": _interval(payload),
            "slots": _count(payload, "slots", low=0, default=0),
            "boot_id": _text(payload, "boot_id", default=""),
            "last_heartbeat": self.clock(),
            "reported": payload,
        }
        load = tuple(_count(payload, key, low=0, default=0) for key in LOAD_FIELDS)
        record = self.workers.get(worker_id)
        if (
            record is not None
            and not replace
            and record.alive(self.clock())
            and (record.url, record.boot_id) != (values["url"], values["boot_id"])
        ):
            raise WorkerConflict(
                record.url,
                record.boot_id,
                f"worker '{worker_id}' is alive at {record.url} (boot {record.boot_id or '?'}"
                "): a heartbeat with another URL or boot id is refused while that process "
                "answers there",
            )
        if record is None:
            record = WorkerRecord(
                worker_id=worker_id,
                breaker=CircuitBreaker(
                    failure_threshold=self.settings.breaker_failures,
                    recovery_timeout=self.settings.breaker_recovery,
                    excluded_exceptions=(WorkerRefused,),
                    name=f"worker {worker_id}",
                    slow_call_duration=self.settings.breaker_slow_first_token,
                    sliding_window_size=self.settings.breaker_failures,
                    minimum_calls=self.settings.breaker_failures,
                ),
                **values,
            )
            self.workers[worker_id] = record
        else:
            for key, value in values.items():
                setattr(record, key, value)
        record.observe(*load)
        self.models[record.model] = record.model
        if record.model_file:
            self.models.setdefault(record.model_file, record.model)
        return record

    def report(self, record: WorkerRecord, headers: dict[str, str]) -> None:
        """Take the load a worker reported in its answer's headers (ignored if malformed)."""
        try:
            load = [int(headers[name]) for name in LOAD_HEADERS]
        except (KeyError, ValueError):
            return
        if all(0 <= value < 2**63 for value in load):
            record.observe(*load)

    def known_models(self) -> list[str]:
        """The models ever named by a heartbeat, in the order they were first seen."""
        return list(dict.fromkeys(self.models.values()))

    def model_for(self, name: str) -> str | None:
        """The known model a request's `model` names (None: no worker has reported yet).

        While exactly one model has ever been known, any name means it. Raises
        UnknownModel for a name no heartbeat ever carried.
        """
        known = self.known_models()
        if len(known) <= 1:
            return known[0] if known else None
        if name not in self.models:
            raise UnknownModel(name)
        return self.models[name]

    def at_capacity(self) -> bool:
        """The early check: system-wide session and KV limits, over every live worker's
        load (so the sessions other coordinators opened count too), each worker's at most
        its capacity (a bogus report cannot close the system beyond that worker's share)."""
        now = self.clock()
        sessions = kv_bytes = 0
        for w in self.workers.values():
            if w.alive(now):
                load = w.load_now()
                sessions += min(load[0], w.max_sessions)
                kv_bytes += min(load[1], w.kv_capacity_bytes)
        sessions = max(sessions, self.total_sessions)
        kv_bytes = max(kv_bytes, self.total_kv_bytes)
        return sessions >= self.limits.max_sessions or kv_bytes >= self.limits.max_kv_bytes

    def live_workers(self) -> dict[str, int]:
        """Every known model with how many of its workers take new sessions now."""
        now = self.clock()
        counts = dict.fromkeys(self.known_models(), 0)
        for w in self.workers.values():
            if w.routable(now):
                counts[w.model] = counts.get(w.model, 0) + 1
        return counts

    def candidates(self, exclude: set[str], model: str | None = None) -> list[WorkerLoad]:
        """The loads of the routable workers (of `model`, when given) not in `exclude`."""
        now = self.clock()
        loads = []
        for w in self.workers.values():
            routable = w.routable(now)
            w.in_rotation = routable
            if (
                routable
                and w.worker_id not in exclude
                and (model is None or w.model == model)
                and w.session_kv_bytes <= self.limits.max_kv_per_session_bytes
            ):
                loads.append(w.load())
        return loads

    def live_n_ctx(self, model: str | None = None) -> int | None:
        """The smallest context among live workers (of `model`; None when none is live)."""
        now = self.clock()
        sizes = [
            w.n_ctx
            for w in self.workers.values()
            if w.alive(now) and (model is None or w.model == model)
        ]
        return min(sizes) if sizes else None

    def reserve(self, record: WorkerRecord) -> int:
        """Count a session on `record` at the full-context upper bound; returns the bytes held."""
        kv_bytes = record.session_kv_bytes
        record.sessions += 1
        record.kv_used_bytes += kv_bytes
        self.total_sessions += 1
        self.total_kv_bytes += kv_bytes
        return kv_bytes

    def correct(self, record: WorkerRecord, held: int, real: int) -> int:
        """Replace a session's `held` reservation by the worker's `real` figure; returns it."""
        record.kv_used_bytes += real - held
        self.total_kv_bytes += real - held
        return real

    def release(self, record: WorkerRecord, kv_bytes: int) -> None:
        record.sessions -= 1
        record.kv_used_bytes -= kv_bytes
        self.total_sessions -= 1
        self.total_kv_bytes -= kv_bytes

    def describe(self) -> list[dict[str, Any]]:
        """The `/coordinator/health/workers` listing."""
        now = self.clock()
        return [
            {
                "worker_id": w.worker_id,
                "url": w.url,
                "healthy": w.routable(now),
                "alive": w.alive(now),
                "breaker": w.breaker.state.value,
                "breaker_slow_calls": w.breaker.slow_calls,
                "sessions": w.load_now()[0],
                "own_sessions": w.sessions,
                "max_sessions": w.max_sessions,
                "kv_used_bytes": w.load_now()[1],
                "kv_capacity_bytes": w.kv_capacity_bytes,
                "last_heartbeat_s": round(now - w.last_heartbeat, 3),
                "model": w.model,
                "model_file": w.model_file,
                "n_ctx": w.n_ctx,
            }
            for w in self.workers.values()
        ]


async def still_there(url: str, boot_id: str, headers: dict[str, str]) -> bool:
    """Whether the worker at `url` answers as the process `boot_id` (so a heartbeat that
    claims its id with another URL or boot id is not believed)."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            response = await client.get(f"{url}/worker/health", headers=headers)
        return response.status_code == 200 and response.json().get("boot_id") == boot_id
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
