"""Several models behind one coordinator: two real GGUFs (SmolLM2 and the tiny one).

One `serve --model smol=... --model tiny=...` for routing, `/v1/models` and the 404s; a
coordinator with one worker per model for the 503 after a worker dies; one model for the
rule that any name is accepted while one model was ever known.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ishan_tools.infer.config import CoordinatorSettings
from ishan_tools.infer.coordinator.registry import Registry
from ishan_tools.infer.errors import UnknownModel

from .conftest import Cluster, Proc, wait_until, workers_of
from .test_metrics import scrape, value

NOT_SERVED = {
    "error": {
        "message": "model 'gamma' is not served",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
}


def models_of(url: str) -> dict[str, int]:
    """`/v1/models` as {name: live workers}."""
    data = httpx.get(f"{url}/v1/models", timeout=5).json()["data"]
    return {m["id"]: m["workers"] for m in data}


def chat(url: str, model: str, text: str = "Say hi.", max_tokens: int = 4) -> httpx.Response:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)


def streamed(url: str, model: str, text: str) -> tuple[str, str]:
    """Stream a chat answer: (the x-ishan-worker header, the chunks' model)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 4,
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200, r.read()
        chunks = [
            json.loads(line[6:])
            for line in r.iter_lines()
            if line.startswith("data: {") and '"choices"' in line
        ]
        return r.headers["x-ishan-worker"], chunks[0]["model"]


def api(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def two_models(tiny_model: Path, smollm2: Path) -> Iterator[Proc]:
    serve = Proc(
        [
            "serve",
            "--port",
            "0",
            "--worker-port",
            "0",
            "--model",
            f"smol={smollm2}",
            "--model",
            f"tiny={tiny_model}",
            "--threads",
            "1",
            "--ctx",
            "512",
            "--heartbeat-interval",
            "0.2",
        ]
    )
    try:
        wait_until(lambda: models_of(serve.url) == {"smol": 1, "tiny": 1}, timeout=90)
        yield serve
    finally:
        serve.stop()


def test_serve_spreads_the_workers_over_the_models_and_lists_them(two_models: Proc) -> None:
    assert "started 2 worker(s)" in two_models.output
    assert "model smol: worker-1" in two_models.output
    assert "model tiny: worker-2" in two_models.output
    listed = api(two_models.url).models.list().data
    assert sorted((m.id, m.workers) for m in listed) == [("smol", 1), ("tiny", 1)]  # type: ignore[attr-defined]
    served = {w["worker_id"]: w["model"] for w in workers_of(two_models.url)}
    assert served == {"worker-1": "smol", "worker-2": "tiny"}


def test_mixed_traffic_goes_to_the_workers_of_its_model(two_models: Proc) -> None:
    url = two_models.url
    seen = [streamed(url, model, f"question {i}") for i in range(3) for model in ("tiny", "smol")]
    assert seen == [("worker-2", "tiny"), ("worker-1", "smol")] * 3
    # the file name, today's model name, is an alias
    assert streamed(url, "tiny-random-llama.gguf", "hello") == ("worker-2", "tiny")
    whole = api(url).chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0
    )
    assert whole.model == "smol" and whole.choices[0].message.content
    body = {"model": "tiny", "prompt": "hello", "max_tokens": 3}
    with httpx.stream("POST", f"{url}/coordinator/infer", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["x-ishan-worker"] == "worker-2"
        r.read()


def test_an_unknown_model_gets_404_on_both_apis(two_models: Proc) -> None:
    url = two_models.url
    response = chat(url, "gamma")
    assert response.status_code == 404
    assert response.json() == NOT_SERVED
    with pytest.raises(openai.NotFoundError) as caught:
        api(url).completions.create(model="gamma", prompt="hello", max_tokens=2)
    assert caught.value.code == "model_not_found"
    assert caught.value.body == NOT_SERVED["error"]
    infer = httpx.post(
        f"{url}/coordinator/infer", json={"model": "gamma", "prompt": "hi"}, timeout=10
    )
    assert infer.status_code == 404
    assert infer.json() == {"error": "model 'gamma' is not served (served: smol, tiny)"} or (
        infer.json() == {"error": "model 'gamma' is not served (served: tiny, smol)"}
    )


def test_one_leading_text_sent_to_two_models_goes_to_each_models_own_worker(
    two_models: Proc,
) -> None:
    url = two_models.url
    text = "Tell me about rivers. " * 13  # 286 characters: one whole 256-character block
    routed = "ishan_infer_routing_affinity_total"
    before = scrape(url)
    seen = [streamed(url, model, text) for model in ("tiny", "smol", "tiny", "smol")]
    after = scrape(url)
    assert seen == [("worker-2", "tiny"), ("worker-1", "smol")] * 2
    # each request goes to the owner of its text among its own model's workers; no model's
    # text is owned by the other's worker (which would count as overridden)
    assert value(after, routed, outcome="followed") - value(before, routed, outcome="followed") == 4
    assert value(after, routed, outcome="overridden") == value(before, routed, outcome="overridden")


def test_metrics_count_each_models_requests_and_tokens(two_models: Proc) -> None:
    url = two_models.url
    before = scrape(url)
    for model in ("tiny", "smol", "tiny"):
        streamed(url, model, "Count to ten.")
    assert chat(url, "gamma").status_code == 404
    after = scrape(url)

    def grown(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "ishan_infer_model_requests_total"
    assert grown(requests, model="tiny", outcome="200") == 2
    assert grown(requests, model="smol", outcome="200") == 1
    tokens = "ishan_infer_model_tokens_generated_total"
    per_model = [grown(tokens, model=m) for m in ("tiny", "smol")]
    assert all(n > 0 for n in per_model)
    assert sum(per_model) == grown("ishan_infer_tokens_generated_total")
    assert value(after, "ishan_infer_model_workers", model="smol") == 1
    assert value(after, "ishan_infer_worker_healthy", worker="worker-2", model="tiny") == 1
    assert not [labels for _, labels in after if ("model", "gamma") in labels]


@pytest.fixture
def pair(cluster: Any, smollm2: Path, tiny_model: Path) -> Cluster:
    """A coordinator with one worker per model; the tiny one named as the original's curl."""
    c: Cluster = cluster(model=smollm2)
    c.add_worker("w-smol", ctx=512)
    c.add_worker("w-tiny", "--model-name", "tinyllama-1.1b", ctx=512, model=tiny_model)
    return c


def test_a_model_whose_only_worker_died_gets_503_while_the_other_carries_on(
    pair: Cluster,
) -> None:
    assert models_of(pair.url) == {"SmolLM2-135M-Instruct.Q4_1": 1, "tinyllama-1.1b": 1}
    assert chat(pair.url, "tinyllama-1.1b").status_code == 200
    pair.workers["w-tiny"].popen.kill()
    wait_until(lambda: models_of(pair.url)["tinyllama-1.1b"] == 0, timeout=10)
    refused = chat(pair.url, "tinyllama-1.1b")
    assert refused.status_code == 503
    assert "'tinyllama-1.1b'" in refused.json()["error"]["message"]
    with pytest.raises(openai.InternalServerError) as caught:
        api(pair.url).completions.create(model="tinyllama-1.1b", prompt="hi", max_tokens=2)
    assert caught.value.status_code == 503
    refusals = value(
        scrape(pair.url), "ishan_infer_model_requests_total", model="tinyllama-1.1b", outcome="503"
    )
    assert refusals == 2
    # the other model carries on, under its name and its file's name; gamma is still unknown
    for name in ("SmolLM2-135M-Instruct.Q4_1", "SmolLM2-135M-Instruct.Q4_1.gguf"):
        answer = chat(pair.url, name)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == "SmolLM2-135M-Instruct.Q4_1"
        assert answer.headers["x-ishan-worker"] == "w-smol"
    assert chat(pair.url, "gamma").status_code == 404


def test_with_one_model_any_name_is_accepted(cluster: Any) -> None:
    c: Cluster = cluster()
    c.add_worker("w1", ctx=512)
    assert models_of(c.url) == {"tiny-random-llama": 1}
    for name in ("tinyllama-1.1b", "gamma", "default"):
        answer = chat(c.url, name)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == "tiny-random-llama"


def beat(worker_id: str, model: str, model_file: str = "") -> dict[str, Any]:
    return {
        "worker_id": worker_id,
        "url": f"http://127.0.0.1:1/{worker_id}",
        "model": model,
        "model_file": model_file,
        "n_ctx": 512,
        "max_sessions": 4,
        "kv_capacity_bytes": 1 << 30,
        "session_kv_bytes": 1 << 20,
        "heartbeat_interval": 10,
    }


def test_a_model_is_known_from_its_first_heartbeat_until_the_restart() -> None:
    now = [0.0]
    registry = Registry(CoordinatorSettings(), clock=lambda: now[0])
    assert registry.model_for("anything") is None  # nobody reported yet: routed by load
    registry.heartbeat(beat("a", "alpha", "alpha.Q4.gguf"))
    assert registry.model_for("gamma") == "alpha"  # one model known: any name is it
    registry.heartbeat(beat("b", "beta"))
    assert registry.model_for("alpha.Q4.gguf") == "alpha"
    assert registry.model_for("beta") == "beta"
    with pytest.raises(UnknownModel, match="model 'gamma' is not served"):
        registry.model_for("gamma")
    now[0] = 1000.0  # both workers long silent: still known, with no live worker
    assert registry.live_workers() == {"alpha": 0, "beta": 0}
    assert [w.worker_id for w in registry.candidates(set(), "beta")] == []
