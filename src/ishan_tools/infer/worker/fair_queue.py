"""The engine's wait queue: sessions beyond the slots, shared fairly between tenants.

Each tenant (`request.tenant`; None for sessions without one) waits in its own FIFO, and
the next session to start is chosen by start-time fair queuing, as stride scheduling does:
every tenant has a virtual pass, starting one of its sessions adds `1 / weight` to it, and
the waiting tenant with the lowest pass goes next (on a tie, the one whose next session
came first). So a tenant of weight 3 starts three sessions for each one of a tenant of
weight 1 while both wait, and one that queued many sessions cannot hold back one that
queued a single session later. The queue's virtual time is the pass of the last tenant
served; a tenant that had nothing waiting comes back at that time at the earliest, so it
cannot bank credit while idle and then take every slot. Without tenants there is one FIFO:
first come, first served, as before tenants.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from ishan_tools.infer.worker.session import Session


class FairQueue:
    """Waiting sessions: FIFO within a tenant, weighted fair order across tenants."""

    def __init__(self) -> None:
        self._queues: dict[str | None, deque[Session]] = {}  # tenants with sessions waiting
        self._passes: dict[str | None, float] = {}  # waiting tenants, and idle ones ahead
        self._now = 0.0  # virtual time: the pass the last session started at

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def __bool__(self) -> bool:
        return bool(self._queues)

    def __contains__(self, session: Session) -> bool:
        return session in self._queues.get(session.request.tenant, ())

    def __iter__(self) -> Iterator[Session]:
        """Every waiting session, tenant by tenant."""
        for queue in self._queues.values():
            yield from queue

    def append(self, session: Session) -> None:
        tenant = session.request.tenant
        queue = self._queues.get(tenant)
        if queue is None:  # back from idle: no credit for the time it had nothing waiting
            queue = self._queues[tenant] = deque()
            self._passes[tenant] = max(self._passes.get(tenant, 0.0), self._now)
        queue.append(session)

    def popleft(self) -> Session:
        """Take the next session to start: the first of the tenant with the lowest pass
        (`Session.id` counts arrivals, so it breaks ties first come, first served)."""
        tenant = min(self._queues, key=lambda t: (self._passes[t], self._queues[t][0].id))
        queue = self._queues[tenant]
        session = queue.popleft()
        if not queue:
            del self._queues[tenant]
        self._now = self._passes[tenant]
        self._passes[tenant] += 1 / session.request.weight
        # an idle tenant at or behind the virtual time would come back at it anyway
        self._passes = {t: p for t, p in self._passes.items() if p > self._now or t in self._queues}
        return session

    def remove(self, session: Session) -> None:
        """Drop a waiting session (cancelled); its tenant's pass stays as it was."""
        tenant = session.request.tenant
        queue = self._queues[tenant]
        queue.remove(session)
        if not queue:
            del self._queues[tenant]
