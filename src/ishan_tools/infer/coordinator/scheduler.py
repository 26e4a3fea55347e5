"""Pick a worker for a new session: a pure function of the workers' loads.

Score = 0.6 x session load + 0.4 x KV-cache load, both as fractions of the worker's own
capacity; the lowest score wins, ties go to the first worker listed. A worker without room
for one more session (sessions or KV) is never picked.

Cache-aware: a `preferred` worker (the one that last served the request's leading text, so
its prefix cache likely holds it) wins unless its score is worse than the best's by more
than `margin`, or every one of its slots is busy while the best worker has a free one (the
request would wait in its queue while another worker idles).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SESSION_WEIGHT = 0.6
KV_WEIGHT = 0.4


@dataclass(frozen=True)
class WorkerLoad:
    worker_id: str
    sessions: int
    max_sessions: int
    kv_used_bytes: int
    kv_capacity_bytes: int
    session_kv_bytes: int
    slots: int = 0  # sessions it decodes at once; 0: not reported

    @property
    def has_room(self) -> bool:
        return (
            self.sessions < self.max_sessions
            and self.kv_used_bytes + self.session_kv_bytes <= self.kv_capacity_bytes
        )


def score(load: WorkerLoad) -> float:
    """0 for an idle worker, 1 for a full one."""
    sessions = load.sessions / load.max_sessions if load.max_sessions > 0 else 1.0
    kv = load.kv_used_bytes / load.kv_capacity_bytes if load.kv_capacity_bytes > 0 else 1.0
    return SESSION_WEIGHT * sessions + KV_WEIGHT * kv


def slot_free(load: WorkerLoad) -> bool:
    """Whether a new session would decode at once rather than wait (unknown slots: yes)."""
    return load.slots <= 0 or load.sessions < load.slots


def pick(
    loads: Iterable[WorkerLoad], preferred: str | None = None, margin: float = 0.0
) -> WorkerLoad | None:
    """The preferred worker if it is not much busier, else the least-loaded one with room;
    None when none has room."""
    best: WorkerLoad | None = None
    best_score = float("inf")
    favourite: WorkerLoad | None = None
    for load in loads:
        if not load.has_room:
            continue
        value = score(load)
        if value < best_score:
            best, best_score = load, value
        if load.worker_id == preferred:
            favourite = load
    if favourite is None or best is None:
        return best
    if score(favourite) - best_score > margin:
        return best
    if not slot_free(favourite) and slot_free(best):
        return best
    return favourite
