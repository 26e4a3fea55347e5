"""The OpenAI-compatible API, driven by the official `openai` client and raw HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from .conftest import Cluster


@pytest.fixture
def served(cluster: Any) -> Cluster:
    c: Cluster = cluster()
    c.add_worker("w1", ctx=512)
    return c


def client(c: Cluster, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{c.url}/v1", api_key=key, max_retries=0)


def test_models_lists_the_served_model(served: Cluster) -> None:
    models = client(served).models.list()
    assert [(m.id, m.workers) for m in models.data] == [("tiny-random-llama", 1)]  # type: ignore[attr-defined]


def test_completions_with_and_without_streaming_agree(served: Cluster) -> None:
    api = client(served)
    whole = api.completions.create(
        model="default", prompt="hello world", max_tokens=10, temperature=0
    )
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None and whole.usage.completion_tokens == 10
    pieces = api.completions.create(
        model="default", prompt="hello world", max_tokens=10, temperature=0, stream=True
    )
    chunks = list(pieces)
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_sequences_end_the_completion(served: Cluster) -> None:
    api = client(served)
    text = (
        api.completions.create(model="m", prompt="hello", max_tokens=40, temperature=0)
        .choices[0]
        .text
    )
    stop = text[5:7]
    stopped = api.completions.create(
        model="m", prompt="hello", max_tokens=40, temperature=0, stop=[stop]
    )
    assert stopped.choices[0].text == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_chat_completions_stream_and_not(served: Cluster) -> None:
    api = client(served)
    messages: Any = [{"role": "user", "content": "hello"}]
    whole = api.chat.completions.create(
        model="default", messages=messages, max_tokens=6, temperature=0, seed=3
    )
    assert whole.choices[0].message.role == "assistant"
    stream = api.chat.completions.create(
        model="default", messages=messages, max_tokens=6, temperature=0, seed=3, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text == whole.choices[0].message.content and text


def test_errors_come_in_openai_shape(served: Cluster) -> None:
    api = client(served)
    with pytest.raises(openai.BadRequestError, match="context holds 512"):
        api.completions.create(model="m", prompt="hi", max_tokens=100000)
    with pytest.raises(openai.BadRequestError, match="context window"):
        api.completions.create(model="m", prompt="hello " * 600, max_tokens=4)
    response = httpx.post(f"{served.url}/v1/chat/completions", json={"model": "m"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "messages" in error["message"]
    body = {"model": "m", "prompt": "hi", "max_tokens": 2, "stream": 1}  # not a boolean
    response = httpx.post(f"{served.url}/v1/completions", json=body)
    assert response.status_code == 400 and "'stream'" in response.json()["error"]["message"]


def test_an_api_key_guards_every_endpoint_but_health(cluster: Any) -> None:
    c: Cluster = cluster("--api-key", "s3cret")
    c.add_worker("w1", "--api-key", "s3cret", ctx=512)
    with pytest.raises(openai.AuthenticationError):
        client(c, "wrong").models.list()
    response = httpx.post(f"{c.url}/coordinator/infer", json={"prompt": "x", "model": "m"})
    assert response.status_code == 401
    assert httpx.get(f"{c.url}/coordinator/health").status_code == 200
    done = client(c, "s3cret").completions.create(model="m", prompt="hello", max_tokens=3)
    assert done.usage is not None and done.usage.completion_tokens == 3
