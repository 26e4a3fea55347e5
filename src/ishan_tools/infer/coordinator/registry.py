"""The coordinator's view of its workers: heartbeats, live load, breakers and admission.

Workers register with their first heartbeat and stay listed; one that misses three
heartbeats in a row is out of rotation until the next arrives. Session and KV counts are
kept by the coordinator itself as it routes (so they are exact between heartbeats), along
with system-wide totals that make the capacity check O(1). The registry also owns the
routing `Affinity` table, and forgets a worker's entries when its heartbeat shows a new
boot id (it restarted: its prefix cache is empty) or when it leaves the rotation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ishan_tools.breaker import CircuitBreaker, CircuitState
from ishan_tools.errors import InferenceError
from ishan_tools.infer.config import CoordinatorSettings
from ishan_tools.infer.coordinator.affinity import Affinity
from ishan_tools.infer.coordinator.scheduler import WorkerLoad
from ishan_tools.infer.errors import WorkerRefused

MISSED_HEARTBEATS = 3


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
    reported: dict[str, Any] = field(default_factory=dict)

    def alive(self, now: float) -> bool:
        return now - self.last_heartbeat <= MISSED_HEARTBEATS * self.heartbeat_interval

    def routable(self, now: float) -> bool:
        return self.alive(now) and self.breaker.state is not CircuitState.OPEN

    def load(self) -> WorkerLoad:
        return WorkerLoad(
            self.worker_id,
            self.sessions,
            self.max_sessions,
            self.kv_used_bytes,
            self.kv_capacity_bytes,
            self.session_kv_bytes,
            self.slots,
        )


def _optional(payload: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = payload.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InferenceError(f"heartbeat field '{key}' has the wrong type")
    return value


def _field(payload: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = payload.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InferenceError(f"heartbeat field '{key}' is missing or has the wrong type")
    return value


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
        self.affinity = Affinity(settings.affinity_entries)

    def heartbeat(self, payload: Any) -> WorkerRecord:
        """Register or refresh a worker from its heartbeat (raises on a malformed one)."""
        if not isinstance(payload, dict):
            raise InferenceError("a heartbeat must be a JSON object")
        worker_id = _field(payload, "worker_id", str)
        limits = self.limits
        values = {
            "url": _field(payload, "url", str).rstrip("/"),
            "model": _field(payload, "model", str),
            "n_ctx": _field(payload, "n_ctx", int),
            "max_sessions": min(
                _field(payload, "max_sessions", int), limits.max_sessions_per_worker
            ),
            "kv_capacity_bytes": min(
                _field(payload, "kv_capacity_bytes", int), limits.max_kv_per_worker_bytes
            ),
            "session_kv_bytes": _field(payload, "session_kv_bytes", int),
            "heartbeat_interval": float(_field(payload, "heartbeat_interval", (int, float))),
            "slots": _optional(payload, "slots", int, 0),
            "boot_id": _optional(payload, "boot_id", str, ""),
            "last_heartbeat": self.clock(),
            "reported": payload,
        }
        record = self.workers.get(worker_id)
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
            if record.boot_id != values["boot_id"]:
                self.affinity.forget(worker_id)  # a new process: its cache is empty
            for key, value in values.items():
                setattr(record, key, value)
        return record

    def at_capacity(self) -> bool:
        """The O(1) early check: system-wide session and KV limits."""
        return (
            self.total_sessions >= self.limits.max_sessions
            or self.total_kv_bytes >= self.limits.max_kv_bytes
        )

    def candidates(self, exclude: set[str]) -> list[WorkerLoad]:
        now = self.clock()
        loads = []
        for w in self.workers.values():
            routable = w.routable(now)
            if w.in_rotation and not routable:
                self.affinity.forget(w.worker_id)
            w.in_rotation = routable
            if (
                routable
                and w.worker_id not in exclude
                and w.session_kv_bytes <= self.limits.max_kv_per_session_bytes
            ):
                loads.append(w.load())
        return loads

    def live_n_ctx(self) -> int | None:
        """The smallest context among live workers (None when none is live)."""
        now = self.clock()
        sizes = [w.n_ctx for w in self.workers.values() if w.alive(now)]
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
                "sessions": w.sessions,
                "max_sessions": w.max_sessions,
                "kv_used_bytes": w.kv_used_bytes,
                "kv_capacity_bytes": w.kv_capacity_bytes,
                "last_heartbeat_s": round(now - w.last_heartbeat, 3),
                "model": w.model,
                "n_ctx": w.n_ctx,
            }
            for w in self.workers.values()
        ]
