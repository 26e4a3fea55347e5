"""The engine against real GGUF models: streaming, limits, cancellation, greedy fidelity."""

from __future__ import annotations

import time
from pathlib import Path

import llama_cpp
import pytest
from llama_cpp import Llama

from ishan_tools.errors import InferenceError
from ishan_tools.infer import EngineSettings, GenerationRequest, ModelSettings, run
from ishan_tools.infer.errors import EngineBusy
from ishan_tools.infer.events import Done, Failed, Token
from ishan_tools.infer.worker.engine import Engine
from ishan_tools.infer.worker.sampling import Sampler

GREEDY = {"temperature": 0.0, "seed": 1}


@pytest.fixture(scope="module")
def tiny_engine(tiny_model: Path) -> Engine:
    engine = Engine.load(
        EngineSettings(ModelSettings(tiny_model, n_ctx=256, n_threads=1), max_sessions=2)
    )
    yield engine  # type: ignore[misc]
    engine.close()


def test_a_generation_streams_tokens_then_done(tiny_engine: Engine) -> None:
    events = list(tiny_engine.stream(GenerationRequest(prompt="hello", max_tokens=12, **GREEDY)))
    tokens = [e for e in events if isinstance(e, Token)]
    assert len(tokens) == 12 and all(t.text for t in tokens)
    last = events[-1]
    assert isinstance(last, Done)
    assert (last.finish_reason, last.completion_tokens) == ("length", 12)
    assert last.prompt_tokens >= 2
    assert tiny_engine.stats().sessions == 0


def test_greedy_generation_is_repeatable(tiny_engine: Engine) -> None:
    def text() -> str:
        request = GenerationRequest(prompt="the model", max_tokens=20, **GREEDY)
        return "".join(e.text for e in tiny_engine.stream(request) if isinstance(e, Token))

    assert text() == text()


def test_a_prompt_longer_than_the_context_fails_with_400(tiny_engine: Engine) -> None:
    events = list(tiny_engine.stream(GenerationRequest(prompt="hello " * 300, max_tokens=4)))
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert events[0].status == 400 and "context" in events[0].message


def test_the_engine_refuses_sessions_beyond_its_maximum(tiny_engine: Engine) -> None:
    long = GenerationRequest(prompt="hello", max_tokens=200, **GREEDY)
    first, second = tiny_engine.submit(long), tiny_engine.submit(long)
    with pytest.raises(EngineBusy, match="capacity"):
        tiny_engine.submit(long)
    assert tiny_engine.stats().sessions == 2
    tiny_engine.cancel(first)
    tiny_engine.cancel(second)
    for session in (first, second):
        while not isinstance(event := session.channel.get(timeout=10), Failed | Done):
            assert event is not None
        assert isinstance(event, Failed) and event.status == 499
    assert tiny_engine.stats().sessions == 0
    assert tiny_engine.stats().cancelled >= 2


def test_a_reader_that_falls_behind_is_dropped_not_the_engine(tiny_model: Path) -> None:
    engine = Engine.load(
        EngineSettings(ModelSettings(tiny_model, n_ctx=512, n_threads=1), channel_capacity=4)
    )
    try:
        session = engine.submit(GenerationRequest(prompt="hi", max_tokens=400, **GREEDY))
        while engine.stats().sessions:  # never read: the channel fills up
            time.sleep(0.01)
        events = []
        while (event := session.channel.get(timeout=1)) is not None:
            events.append(event)
        assert len(events) == 5 and isinstance(events[-1], Failed)
        assert "too slow" in events[-1].message
        follow_up = list(engine.stream(GenerationRequest(prompt="hi", max_tokens=3, **GREEDY)))
        assert isinstance(follow_up[-1], Done)
    finally:
        engine.close()


def test_kv_bytes_follow_the_model_shape(smollm2: Path) -> None:
    engine = Engine.load(EngineSettings(ModelSettings(smollm2, n_ctx=2048, n_threads=1)))
    try:
        # SmolLM2-135M: 30 layers x 3 KV heads x (64 + 64) dims x 2 bytes (f16)
        assert engine.shape.kv_bytes_per_token == 23040
        assert engine.shape.session_kv_bytes == 23040 * 2048
    finally:
        engine.close()


def test_a_context_too_large_for_the_per_session_kv_limit_is_refused(smollm2: Path) -> None:
    settings = EngineSettings(ModelSettings(smollm2, n_ctx=2048), max_kv_per_session_bytes=1000)
    with pytest.raises(InferenceError, match="lower --ctx"):
        Engine.load(settings)


def test_solo_greedy_output_matches_llama_cpp_python_directly(smollm2: Path) -> None:
    prompt = "The capital of France is"
    llama = Llama(
        str(smollm2),
        n_ctx=512,
        n_batch=512,
        n_threads=2,
        n_threads_batch=2,
        flash_attn=True,
        verbose=False,
    )
    direct = llama.create_completion(prompt, max_tokens=24, temperature=0.0)
    expected = direct["choices"][0]["text"]  # type: ignore[index]
    del llama
    result = run(
        EngineSettings(ModelSettings(smollm2, n_ctx=512, n_batch=512, n_threads=2)),
        GenerationRequest(prompt=prompt, raw=True, max_tokens=24, temperature=0.0),
    )
    assert expected.strip()
    assert result.text == expected
    assert result.completion_tokens == 24 and result.finish_reason == "length"
    assert result.tokens_per_s is not None and result.ttft_s is not None


def test_a_greedy_session_picks_what_llama_cpps_greedy_chain_picks(smollm2: Path) -> None:
    # numpy's argmax stands in for the greedy chain: compare them on real logits, with
    # nothing banned and with the best tokens banned (as ignore_eos bans the end tokens)
    llama = Llama(str(smollm2), n_ctx=256, n_threads=2, verbose=False)
    llama.eval(llama.tokenize(b"The capital of France is"))
    ctx, vocab, n_vocab = llama._ctx.ctx, llama._model.vocab, llama.n_vocab()

    def chain_pick(banned: list[int]) -> int:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if banned:
            bias = (llama_cpp.llama_logit_bias * len(banned))(
                *(llama_cpp.llama_logit_bias(t, float("-inf")) for t in banned)
            )
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(banned), bias)
            )
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        try:
            return int(llama_cpp.llama_sampler_sample(chain, ctx, -1))
        finally:
            llama_cpp.llama_sampler_free(chain)

    best = chain_pick([])
    picks = []
    # each ban list holds the one before: the fast path bans in place, in the logits
    for banned in ([], [best], [best, chain_pick([best])]):
        expected = chain_pick(banned)
        request = GenerationRequest(prompt="x", temperature=0.0, ignore_eos=bool(banned))
        sampler = Sampler(request, vocab=vocab, n_vocab=n_vocab, banned=banned)
        assert sampler._argmax  # the fast path is the one under test
        picks.append(sampler.sample(ctx, -1))
        assert picks[-1] == expected
        sampler.close()
    assert len(set(picks)) == 3  # the bans did move the pick


def test_chat_uses_the_template_stored_in_the_gguf(smollm2: Path) -> None:
    result = run(
        EngineSettings(ModelSettings(smollm2, n_ctx=512, n_threads=2)),
        GenerationRequest(
            messages=(("user", "What is the capital of France? One word."),),
            max_tokens=16,
            temperature=0.0,
        ),
    )
    assert "Paris" in result.text
