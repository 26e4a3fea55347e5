"""Answers people can use: chat templates by default, sampling controls, the model's notices.

The service's greedy output is compared with llama-cpp-python called directly, for raw
prompts (`create_completion`) and templated ones (`create_chat_completion`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from llama_cpp import Llama

from ishan_tools.infer import CoordinatorSettings, EngineSettings, GenerationRequest, ModelSettings
from ishan_tools.infer.events import Done, Token
from ishan_tools.infer.worker.engine import Engine

from .conftest import Cluster
from .test_service import infer
from .tiny_gguf import write_tiny_gguf

QUESTION = "What is the capital of France?"
STORY = "Once upon a time, there was a lighthouse keeper who"


@pytest.fixture(scope="module")
def direct(smollm2: Path) -> Iterator[Llama]:
    llama = Llama(str(smollm2), n_ctx=512, n_batch=512, n_threads=1, n_threads_batch=1,
                  flash_attn=True, verbose=False)  # fmt: skip
    yield llama
    llama.close()


@pytest.fixture
def smol(cluster: Any, smollm2: Path) -> Cluster:
    c: Cluster = cluster(model=smollm2)
    c.add_worker("w1", ctx=512, threads=1)
    return c


@pytest.fixture
def exact(cluster: Any, smollm2: Path) -> Cluster:
    """A worker without the prefix cache: a copied prefix leaves llama.cpp's logits a few
    bits off a fresh prefill's (another batch shape), enough to tip a near tie, so
    bit-for-bit comparisons with llama-cpp-python run without it."""
    c: Cluster = cluster(model=smollm2)
    c.add_worker("w1", "--no-prefix-cache", ctx=512, threads=1)
    return c


def streamed(url: str, payload: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    with infer(url, payload) as events:
        received = list(events)
    return "".join(e["token"] for e in received), received


def test_the_original_example_streams_an_answer(smol: Cluster) -> None:
    payload = {"prompt": QUESTION, "model": "tinyllama-1.1b", "max_tokens": 32}
    text, received = streamed(smol.url, payload)
    assert len(received) > 2 and text.strip()
    assert received[-1] == {"token": "", "finished": True}


def test_greedy_service_output_matches_llama_cpp_python_raw_and_templated(
    smol: Cluster, direct: Llama
) -> None:
    greedy = {"model": "m", "max_tokens": 32, "temperature": 0}
    raw, _ = streamed(smol.url, {**greedy, "prompt": STORY, "raw": True})
    expected = direct.create_completion(STORY, max_tokens=32, temperature=0.0)
    assert raw.strip() and raw == expected["choices"][0]["text"]  # type: ignore[index]

    templated, _ = streamed(smol.url, {**greedy, "prompt": QUESTION})
    chat: Any = direct.create_chat_completion(
        [{"role": "user", "content": QUESTION}], max_tokens=32, temperature=0.0
    )
    assert templated.strip() and templated == chat["choices"][0]["message"]["content"]
    assert templated != streamed(smol.url, {**greedy, "prompt": QUESTION, "raw": True})[0]

    system = "Answer in one word."
    answer, _ = streamed(smol.url, {**greedy, "prompt": QUESTION, "system": system})
    chat = direct.create_chat_completion(
        [{"role": "system", "content": system}, {"role": "user", "content": QUESTION}],
        max_tokens=32,
        temperature=0.0,
    )
    assert answer == chat["choices"][0]["message"]["content"] and "Paris" in answer


def test_completions_stay_raw_and_chat_completions_use_the_template(
    smol: Cluster, direct: Llama
) -> None:
    api = openai.OpenAI(base_url=f"{smol.url}/v1", api_key="unused", max_retries=0)
    text = api.completions.create(model="m", prompt=STORY, max_tokens=16, temperature=0)
    expected = direct.create_completion(STORY, max_tokens=16, temperature=0.0)
    assert text.choices[0].text == expected["choices"][0]["text"]  # type: ignore[index]
    messages: Any = [{"role": "user", "content": QUESTION}]
    chat = api.chat.completions.create(model="m", messages=messages, max_tokens=16, temperature=0)
    direct_chat: Any = direct.create_chat_completion(messages, max_tokens=16, temperature=0.0)
    assert chat.choices[0].message.content == direct_chat["choices"][0]["message"]["content"]


def test_system_with_raw_is_refused(smol: Cluster) -> None:
    payload = {"prompt": "hi", "model": "m", "raw": True, "system": "Be brief."}
    response = httpx.post(f"{smol.url}/coordinator/infer", json=payload, timeout=30)
    assert response.status_code == 400 and "'system'" in response.json()["error"]


def test_penalties_change_greedy_output_as_llama_cpp_python_applies_them(
    exact: Cluster, direct: Llama
) -> None:
    smol = exact  # the same prompt runs twice: with the cache, the second copies the first
    greedy = {"model": "m", "prompt": STORY, "raw": True, "max_tokens": 48, "temperature": 0}
    plain, _ = streamed(smol.url, greedy)
    penalized, _ = streamed(smol.url, {**greedy, "repeat_penalty": 1.5})
    assert penalized != plain
    expected = direct.create_completion(STORY, max_tokens=48, temperature=0.0, repeat_penalty=1.5)
    assert penalized == expected["choices"][0]["text"]  # type: ignore[index]
    api = openai.OpenAI(base_url=f"{smol.url}/v1", api_key="unused", max_retries=0)
    for penalty in ("presence_penalty", "frequency_penalty"):
        done = api.completions.create(
            model="m", prompt=STORY, max_tokens=48, temperature=0, **{penalty: 1.5}
        )
        assert done.choices[0].text != plain, penalty
    response = httpx.post(
        f"{smol.url}/coordinator/infer", json={**greedy, "repeat_penalty": 0}, timeout=30
    )
    assert response.status_code == 400 and "repeat_penalty" in response.json()["error"]


def test_ignore_eos_yields_exactly_max_tokens_on_both_apis(smol: Cluster) -> None:
    short = {"model": "m", "prompt": "Say OK.", "system": "Answer in one word.", "temperature": 0}
    _, ended = streamed(smol.url, {**short, "max_tokens": 64})
    assert len(ended) - 1 < 64  # the model ends by itself
    _, forced = streamed(smol.url, {**short, "max_tokens": 64, "ignore_eos": True})
    assert len(forced) - 1 == 64 and all(e["token"] for e in forced[:-1])
    api = openai.OpenAI(base_url=f"{smol.url}/v1", api_key="unused", max_retries=0)
    done = api.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Say OK."}],
        max_tokens=40,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert done.choices[0].finish_reason == "length"
    assert done.usage is not None and done.usage.completion_tokens == 40


def test_a_model_without_a_chat_template_uses_llama2_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = write_tiny_gguf(tmp_path / "no-template.gguf", chat_template=False)
    with caplog.at_level(logging.WARNING):
        engine = Engine.load(EngineSettings(ModelSettings(model, n_ctx=256, n_threads=1)))
    try:
        for _ in range(2):
            events = list(engine.stream(GenerationRequest(prompt="hello", max_tokens=3)))
            assert isinstance(events[-1], Done)
        templated = events[-1].prompt_tokens
        raw = list(engine.stream(GenerationRequest(prompt="hello", raw=True, max_tokens=3)))
        assert isinstance(raw[-1], Done) and raw[-1].prompt_tokens < templated
        assert len([e for e in events if isinstance(e, Token)]) == 3
    finally:
        engine.close()
    notices = [r.message for r in caplog.records if "no chat template" in r.message]
    assert len(notices) == 1
    assert "llama-2" in notices[0] and "no-template.gguf" in notices[0]


def test_gpu_layers_reach_llama_cpp_and_a_cpu_build_says_it_has_no_effect(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import llama_cpp

    with caplog.at_level(logging.WARNING):
        engine = Engine.load(
            EngineSettings(ModelSettings(tiny_model, n_ctx=256, n_threads=1, n_gpu_layers=3))
        )
    try:
        assert engine.llama.model_params.n_gpu_layers == 3
        assert isinstance(
            list(engine.stream(GenerationRequest(prompt="hi", max_tokens=2)))[-1], Done
        )
    finally:
        engine.close()
    notices = [r.message for r in caplog.records if "--gpu-layers" in r.message]
    if llama_cpp.llama_supports_gpu_offload():
        assert notices == []
    else:
        assert len(notices) == 1 and "no effect" in notices[0] and "GGML_CUDA" in notices[0]


def test_gpu_layers_come_from_the_option_or_the_environment(tiny_model: Path) -> None:
    from typer.testing import CliRunner

    from ishan_tools.cli import app
    from ishan_tools.infer.config import ModelSettings, ServeSettings
    from ishan_tools.infer.coordinator.supervisor import worker_argv

    args = ["infer", "run", "hi", "--model", str(tiny_model), "--max-tokens", "2", "--ctx", "64"]
    for extra, env in ((["--gpu-layers", "-1"], {}), ([], {"ISHAN_INFER_GPU_LAYERS": "-1"})):
        result = CliRunner().invoke(app, [*args, *extra], env=env)
        assert result.exit_code == 0, result.output
        if not __import__("llama_cpp").llama_supports_gpu_offload():
            assert result.stderr.count("--gpu-layers -1 has no effect") == 1
    settings = ServeSettings(CoordinatorSettings(), ModelSettings(tiny_model, n_gpu_layers=-1))
    argv = worker_argv(settings, 0, "http://127.0.0.1:1")
    assert argv[argv.index("--gpu-layers") + 1] == "-1"


def test_flash_attention_is_on_by_default_and_off_on_request(tiny_model: Path) -> None:
    import llama_cpp

    from ishan_tools.infer.config import ModelSettings, ServeSettings
    from ishan_tools.infer.coordinator.supervisor import worker_argv

    enabled = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    for flash_attn in (True, False):
        engine = Engine.load(
            EngineSettings(ModelSettings(tiny_model, n_ctx=256, n_threads=1, flash_attn=flash_attn))
        )
        try:
            # the decode loop's batch context copies the model's context parameters
            assert (engine.llama.context_params.flash_attn_type == enabled) is flash_attn
            done = list(engine.stream(GenerationRequest(prompt="hi", max_tokens=2)))[-1]
            assert isinstance(done, Done)
        finally:
            engine.close()
    settings = ServeSettings(CoordinatorSettings(), ModelSettings(tiny_model, flash_attn=False))
    assert "--no-flash-attn" in worker_argv(settings, 0, "http://127.0.0.1:1")
    assert "--no-flash-attn" not in worker_argv(
        ServeSettings(CoordinatorSettings(), ModelSettings(tiny_model)), 0, "http://127.0.0.1:1"
    )
