"""The worker's wait queue (issue 26): FIFO without tenants, weighted fair order with them,
on its own and in a real engine on SmolLM2."""

from __future__ import annotations

import itertools
from pathlib import Path

from ishan_tools.infer import GenerationRequest
from ishan_tools.infer.worker.fair_queue import FairQueue
from ishan_tools.infer.worker.session import Prompt, Session

from .test_batching import engine_with, first, read_all

IDS = itertools.count(1)


def arrive(queue: FairQueue, tenant: str | None, count: int = 1, weight: float = 1.0) -> None:
    for _ in range(count):
        request = GenerationRequest(prompt="hi", tenant=tenant, weight=weight)
        queue.append(Session(next(IDS), request, 4, Prompt([1], (), 1, 0)))


def story(tenant: str) -> GenerationRequest:
    return GenerationRequest(
        prompt="Once upon a time", max_tokens=4, temperature=0.0, ignore_eos=True, tenant=tenant
    )


def take(queue: FairQueue, count: int) -> list[str | None]:
    """The tenants of the next `count` sessions to start."""
    return [queue.popleft().request.tenant for _ in range(count)]


def test_without_tenants_it_is_first_come_first_served() -> None:
    queue = FairQueue()
    arrive(queue, None, 5)
    waiting = list(queue)
    assert len(queue) == 5 and queue
    assert [queue.popleft() for _ in range(5)] == waiting
    assert not queue and len(queue) == 0


def test_equal_weights_take_turns_whoever_queued_more() -> None:
    queue = FairQueue()
    arrive(queue, "a", 4)
    arrive(queue, "b", 2)
    assert take(queue, 6) == ["a", "b", "a", "b", "a", "a"]


def test_a_weight_of_three_starts_three_sessions_for_each_of_weight_one() -> None:
    queue = FairQueue()
    arrive(queue, "heavy", 12, weight=3)
    arrive(queue, "light", 4)
    started = take(queue, 8)
    assert started.count("heavy") == 6 and started.count("light") == 2


def test_a_tenant_back_from_idle_gets_its_share_not_a_burst() -> None:
    queue = FairQueue()
    arrive(queue, "a")
    arrive(queue, "b")
    assert take(queue, 2) == ["a", "b"]
    arrive(queue, "a", 10)
    assert take(queue, 6) == ["a"] * 6  # b has nothing waiting
    arrive(queue, "b", 4)  # b comes back at the queue's time, not with six turns banked
    assert take(queue, 4) == ["b", "a", "b", "a"]


def test_a_removed_session_never_starts_and_its_tenant_keeps_its_place() -> None:
    queue = FairQueue()
    arrive(queue, "a", 2)
    arrive(queue, "b")
    gone = next(s for s in queue if s.request.tenant == "b")
    assert gone in queue
    queue.remove(gone)
    assert gone not in queue and len(queue) == 2
    arrive(queue, "b")
    assert take(queue, 3) == ["a", "b", "a"]


def test_one_slot_starts_a_later_tenants_session_before_the_backlog_of_another(
    smollm2: Path,
) -> None:
    engine = engine_with(smollm2, slots=1)
    try:
        sessions = [engine.submit(story("a")) for _ in range(4)]
        sessions.append(engine.submit(story("b")))
        log, _ = read_all(sessions)
        order = sorted(range(5), key=lambda index: first(log, "Token", index))
        assert order == [0, 4, 1, 2, 3]  # b's one session second, not fifth
    finally:
        engine.close()
