"""The scheduler's choice, the registry's admission counters and request validation."""

from __future__ import annotations

import os

import pytest

from ishan_tools.errors import UsageError
from ishan_tools.infer.config import CoordinatorSettings, Limits, parse_limits
from ishan_tools.infer.coordinator.registry import Registry
from ishan_tools.infer.coordinator.scheduler import WorkerLoad, pick, score
from ishan_tools.infer.coordinator.supervisor import child_env
from ishan_tools.infer.errors import BadRequest
from ishan_tools.infer.protocol import parse_request

MB = 1024 * 1024


def load(worker_id: str, sessions: int, kv_used: int, max_sessions: int = 10) -> WorkerLoad:
    return WorkerLoad(worker_id, sessions, max_sessions, kv_used * MB, 100 * MB, 10 * MB)


def test_score_weighs_sessions_60_and_kv_40() -> None:
    assert score(load("a", 0, 0)) == 0.0
    assert score(load("a", 10, 100)) == pytest.approx(1.0)
    assert score(load("a", 5, 0)) == pytest.approx(0.3)
    assert score(load("a", 0, 50)) == pytest.approx(0.2)


def test_pick_prefers_the_least_loaded_worker() -> None:
    # b has fewer sessions but a fuller KV cache: 0.6*0.2 + 0.4*0.9 = 0.48 > a's 0.6*0.4 = 0.24
    chosen = pick([load("a", 4, 0), load("b", 2, 90)])
    assert chosen is not None and chosen.worker_id == "a"
    chosen = pick([load("a", 4, 0), load("b", 1, 10)])
    assert chosen is not None and chosen.worker_id == "b"


def test_pick_skips_full_workers_and_returns_none_when_all_are_full() -> None:
    full_sessions = load("a", 10, 0)
    full_kv = load("b", 0, 95)  # one more 10 MB session would not fit in 100 MB
    assert pick([full_sessions, full_kv]) is None
    chosen = pick([full_sessions, full_kv, load("c", 9, 90)])
    assert chosen is not None and chosen.worker_id == "c"


def beat(worker_id: str, **overrides: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "worker_id": worker_id,
        "url": f"http://127.0.0.1:1/{worker_id}",
        "model": "m.gguf",
        "n_ctx": 2048,
        "sessions": 0,
        "max_sessions": 100,
        "kv_used_bytes": 0,
        "kv_capacity_bytes": 1000 * MB,
        "session_kv_bytes": 47 * MB,
        "heartbeat_interval": 1.0,
    }
    payload.update(overrides)
    return payload


def test_registry_applies_the_per_worker_limits_and_counts_reservations() -> None:
    now = [0.0]
    limits = Limits(max_sessions_per_worker=3, max_kv_per_worker_bytes=500 * MB, max_sessions=4)
    registry = Registry(CoordinatorSettings(limits=limits), clock=lambda: now[0])
    record = registry.heartbeat(beat("w1"))
    assert (record.max_sessions, record.kv_capacity_bytes) == (3, 500 * MB)
    registry.heartbeat(beat("w2"))
    for _ in range(4):
        chosen = pick(registry.candidates(set()))
        assert chosen is not None
        registry.reserve(registry.workers[chosen.worker_id])
    assert registry.at_capacity()  # system-wide limit of 4 sessions
    assert {w.sessions for w in registry.workers.values()} == {2}
    registry.release(registry.workers["w1"], 47 * MB)
    assert not registry.at_capacity()
    assert registry.total_kv_bytes == 3 * 47 * MB


def test_a_worker_missing_three_heartbeats_leaves_rotation_and_returns() -> None:
    now = [0.0]
    registry = Registry(CoordinatorSettings(), clock=lambda: now[0])
    registry.heartbeat(beat("w1"))
    now[0] = 3.0
    assert [w.worker_id for w in registry.candidates(set())] == ["w1"]
    now[0] = 3.01
    assert registry.candidates(set()) == []
    assert registry.describe()[0]["healthy"] is False
    registry.heartbeat(beat("w1"))
    assert registry.describe()[0]["healthy"] is True


def test_a_worker_whose_session_kv_exceeds_the_per_session_limit_is_not_used() -> None:
    registry = Registry(CoordinatorSettings(limits=Limits(max_kv_per_session_bytes=10 * MB)))
    registry.heartbeat(beat("w1"))
    assert registry.candidates(set()) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"model": "m"}, "'prompt' is required"),
        ({"prompt": "", "model": "m"}, "'prompt' is required"),
        ({"prompt": "hi"}, "'model' is required"),
        ({"prompt": "hi", "model": "m", "max_tokens": 0}, "'max_tokens'"),
        ({"prompt": "hi", "model": "m", "max_tokens": "5"}, "'max_tokens'"),
        ({"prompt": "hi", "model": "m", "max_tokens": 5000}, "context holds 2048"),
        ({"prompt": "hi", "model": "m", "temperature": 3}, "'temperature' must be between"),
        ({"prompt": "hi", "model": "m", "top_p": "x"}, "'top_p' must be a number"),
        ({"prompt": "hi", "model": "m", "seed": -1}, "'seed'"),
        ({"prompt": "hi", "model": "m", "stop": [1]}, "'stop'"),
    ],
)
def test_bad_requests_say_which_field_is_wrong(body: object, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_request(body, require_model=True, n_ctx=2048)


def test_a_good_request_keeps_every_setting() -> None:
    request = parse_request(
        {
            "prompt": "hi",
            "model": "tinyllama-1.1b",
            "max_tokens": 7,
            "temperature": 0,
            "top_p": 0.5,
            "seed": 3,
            "stop": "\n",
        },
        require_model=True,
    )
    assert (request.prompt, request.max_tokens, request.temperature) == ("hi", 7, 0.0)
    assert (request.top_p, request.seed, request.stop) == (0.5, 3, ("\n",))
    chat = parse_request({"messages": [{"role": "user", "content": "hey"}]}, chat=True)
    assert chat.messages == (("user", "hey"),) and chat.prompt is None


def test_limits_come_from_key_value_pairs() -> None:
    limits = parse_limits(["worker-sessions=7", "kv=2GB", "session-kv=64MB", "worker-kv=1.5GB"])
    assert limits.max_sessions_per_worker == 7 and limits.max_sessions == 1000
    assert limits.max_kv_bytes == 2 * 1024**3 and limits.max_kv_per_session_bytes == 64 * MB
    assert limits.max_kv_per_worker_bytes == int(1.5 * 1024**3)
    for bad in ("sessions=0", "sessions=many", "kv=12XB", "nope=3", "kv"):
        with pytest.raises(UsageError, match=r"not a size|bad --limit"):
            parse_limits([bad])


def test_serve_children_do_not_inherit_the_private_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HOST", "PORT", "MODEL_PATH", "WORKER_ID", "WORKER_URL", "COORDINATOR_URL"):
        monkeypatch.setenv(name, "from-the-parent")
    monkeypatch.setenv("ISHAN_INFER_API_KEY", "parent-key")
    env = child_env(api_key=None)
    assert not {"HOST", "PORT", "MODEL_PATH", "WORKER_ID", "ISHAN_INFER_API_KEY"} & set(env)
    assert env["PATH"] == os.environ["PATH"]
    assert child_env(api_key="k")["ISHAN_INFER_API_KEY"] == "k"
