"""The worker's prefix cache: KV cells reused across sessions, counted once, same output."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from ishan_tools.cli import app
from ishan_tools.infer import EngineSettings, GenerationRequest, ModelSettings
from ishan_tools.infer.config import CoordinatorSettings, ServeSettings
from ishan_tools.infer.coordinator.supervisor import worker_argv
from ishan_tools.infer.events import Done
from ishan_tools.infer.worker.engine import Engine
from ishan_tools.infer.worker.prefix_cache import Ledger, PrefixCache, common_prefix

from .conftest import wait_until
from .test_batching import read_all, text_of

SYSTEM = (
    "You are a careful assistant for a small bookshop by the harbour. You answer questions "
    "about opening hours, book orders, author readings and the reading club, briefly and "
    "kindly, and you never invent titles that the shop does not stock. "
)


def test_common_prefix_counts_leading_tokens_up_to_a_limit() -> None:
    assert common_prefix([1, 2, 3, 4], [1, 2, 3, 5], 10) == 3
    assert common_prefix([1, 2, 3], [1, 2, 3, 4], 10) == 3
    assert common_prefix([1, 2, 3], [1, 2, 3], 2) == 2
    assert common_prefix([9, 2], [1, 2], 10) == 0
    long = list(range(1000))
    assert common_prefix(long, [*long[:777], -1], 2000) == 777


def test_the_ledger_counts_shared_cells_once_and_frees_them_with_the_last_holder() -> None:
    ledger = Ledger()
    ledger.grow(0, 100)  # sequence 0 wrote 100 cells
    ledger.copy(0, 1, 80)  # sequence 1 shares the first 80
    ledger.grow(1, 90)  # then writes 10 of its own
    ledger.copy(1, 2, 85)  # sequence 2: 80 from 0 (through 1), 5 of 1's own
    assert ledger.length(2) == 85
    assert ledger.cells() == 110
    assert ledger.cells({1}) == 90 and ledger.cells({1, 2}) == 90
    ledger.drop(0)
    assert ledger.cells() == 90  # positions 80..99 of sequence 0 are free
    ledger.drop(1)
    assert ledger.cells() == 85
    ledger.drop(2)
    assert ledger.cells() == 0


def test_a_truncated_sequence_frees_only_the_cells_no_other_sequence_holds() -> None:
    ledger = Ledger()
    ledger.grow(0, 100)
    ledger.copy(0, 1, 80)
    ledger.grow(1, 120)  # 40 of its own, positions 80..119
    ledger.truncate(1, 90)  # keeps 10 of its own
    assert ledger.length(1) == 90 and ledger.cells() == 110
    ledger.truncate(1, 50)  # only shared cells left: sequence 0 still holds them all
    assert ledger.length(1) == 50 and ledger.cells() == 100 and ledger.cells({1}) == 50
    ledger.truncate(0, 30)
    assert ledger.cells() == 50  # 30..49 are sequence 1's now, 50..99 nobody's
    ledger.drop(1)
    ledger.drop(0)
    assert ledger.cells() == 0


def test_the_cache_drops_entries_that_a_longer_one_covers_and_evicts_oldest_first() -> None:
    cache = PrefixCache(max_entries=4)
    assert cache.add(1, [5, 6, 7]) == []
    assert cache.add(2, [5, 8]) == []
    assert cache.add(3, [5, 6, 7, 9]) == [1]  # 1's tokens are a prefix of 3's
    cache.touch(2)
    assert cache.pop_oldest() == 3 and cache.seqs == [2] and cache.evictions == 1


def test_a_cached_sequence_serves_and_covers_only_its_own_cache_group() -> None:
    cache = PrefixCache(max_entries=4)
    cache.add(1, [5, 6, 7], "a")
    assert cache.add(2, [5, 6, 7, 8], "b") == []  # covers 1's tokens, but not its group
    cache.add(3, [5, 6], None)
    assert list(cache.items("a")) == [(1, [5, 6, 7])]
    assert list(cache.items("b")) == [(2, [5, 6, 7, 8])]
    assert list(cache.items(None)) == [(3, [5, 6])]
    assert cache.add(4, [5, 6, 7, 9], "a") == [1]


def make_engine(model: Path, *, prefix_cache: bool = True, **extra: Any) -> Engine:
    settings = EngineSettings(
        ModelSettings(model, n_ctx=512, n_threads=2), prefix_cache=prefix_cache, **extra
    )
    return Engine.load(settings)


@pytest.fixture(scope="module")
def cached(smollm2: Path) -> Iterator[Engine]:
    engine = make_engine(smollm2, slots=2)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def uncached(smollm2: Path) -> Iterator[Engine]:
    engine = make_engine(smollm2, slots=2, prefix_cache=False)
    yield engine
    engine.close()


def greedy(prompt: str, max_tokens: int = 24) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_tokens=max_tokens, temperature=0.0, raw=True)


def test_greedy_output_is_the_same_with_and_without_the_cache(
    cached: Engine, uncached: Engine
) -> None:
    # Fixed prompts: llama.cpp's logits move in their last bits with the layout of the KV
    # cache (another sequence's cells alongside), so a near tie may tip either way.
    long = SYSTEM + "Question: when does the reading club meet? Answer:"
    story = "Once upon a time, in a small village"
    prompts = [
        long,  # fills the cache
        long,  # the same prompt again: all but its last token reused
        SYSTEM + "Question: when does",  # a prefix of a cached prompt
        SYSTEM + "Question: are you open on Sunday? Answer:",  # shares the system prompt
        story,
        "Once upon a time, in a smaller",  # " small" is cached, " smaller" is another token
    ]
    before = cached.stats()
    for prompt in prompts:
        with_cache = text_of(list(cached.stream(greedy(prompt, 16))))
        without = text_of(list(uncached.stream(greedy(prompt, 16))))
        assert with_cache == without and with_cache, prompt
    stats = cached.stats()
    assert stats.prefix_cache_hits - before.prefix_cache_hits == 4  # all but two fresh ones
    assert stats.prefix_cache_reused_tokens - before.prefix_cache_reused_tokens > 3 * 40
    assert stats.kv_used_bytes == 0 < stats.prefix_cache_bytes == stats.kv_cached_bytes
    assert uncached.stats().prefix_cache_hits == 0 and not uncached.stats().prefix_cache


def test_four_newcomers_with_one_system_prompt_prefill_it_once(smollm2: Path) -> None:
    engine = make_engine(smollm2, slots=4)
    try:
        questions = ["opening hours?", "a book order?", "readings?", "the club?"]
        # ignore_eos: each writes all 32 tokens, however a near tie between the end token and
        # another tips with the batch's layout
        requests = [
            dataclasses.replace(greedy(f"{SYSTEM}Question: {q} Answer:", 32), ignore_eos=True)
            for q in questions
        ]
        prompt_tokens = [len(engine._decoder.prepare(r).tokens) for r in requests]
        shared = len(engine._decoder.prepare(greedy(SYSTEM + "Question:")).tokens)
        sessions = [engine.submit(r) for r in requests]
        wait_until(lambda: engine.stats().active == 4)
        _, events = read_all(sessions)
        assert all(isinstance(e[-1], Done) and e[-1].completion_tokens == 32 for e in events)
        stats = engine.stats()
        assert stats.prefix_cache_hits == 3  # the first prefilled, the others copied
        assert stats.prefix_cache_reused_tokens >= 3 * (shared - 1)
        # one copy of the shared prefix, plus each session's own question and answer
        per_token = engine.shape.kv_bytes_per_token
        own = sum(n - shared + 31 for n in prompt_tokens)
        assert stats.kv_cached_bytes <= (shared + own + 4) * per_token
        assert stats.kv_cached_bytes < sum(n + 31 for n in prompt_tokens) * per_token
    finally:
        engine.close()


def test_a_finished_session_stays_as_cache_without_its_answer(cached: Engine) -> None:
    prompt = SYSTEM + "Question: do you post books abroad? Answer:"
    n_prompt = len(cached._decoder.prepare(greedy(prompt)).tokens)
    before = cached.stats()
    answer = dataclasses.replace(greedy(prompt, 40), ignore_eos=True)
    assert text_of(list(cached.stream(answer)))
    after = cached.stats()
    assert after.kv_used_bytes == 0  # nothing running: every filled cell is cache
    # the prompt's cells stay (shared with what was cached before), the 40 answer cells go
    per_token = cached.shape.kv_bytes_per_token
    assert after.prefix_cache_bytes - before.prefix_cache_bytes < n_prompt * per_token
    assert after.prefix_cache_bytes >= n_prompt * per_token
    again = greedy(prompt + " Yes", 4)  # the whole prompt comes back from the cache
    assert text_of(list(cached.stream(again)))
    reused = cached.stats().prefix_cache_reused_tokens - after.prefix_cache_reused_tokens
    assert reused == n_prompt


def test_live_sessions_take_the_cells_of_the_cache_and_admission_ignores_it(
    smollm2: Path,
) -> None:
    # one slot of 256 cells: a finished session's cells must give way to the next one
    settings = EngineSettings(ModelSettings(smollm2, n_ctx=256, n_threads=2), slots=1)
    engine = Engine.load(settings)
    try:
        first = dataclasses.replace(greedy(SYSTEM, 120), ignore_eos=True)
        assert text_of(list(engine.stream(first)))
        stats = engine.stats()
        assert stats.kv_used_bytes == 0 and stats.prefix_cache_entries == 1
        assert stats.prefix_cache_bytes > 40 * engine.shape.kv_bytes_per_token  # its prompt
        other = dataclasses.replace(greedy("Once upon a time " * 8, 200), ignore_eos=True)
        events = list(engine.stream(other))
        done = events[-1]
        assert isinstance(done, Done) and done.completion_tokens == 200
        assert engine.stats().prefix_cache_evictions == 1
    finally:
        engine.close()


def test_ignore_eos_yields_exactly_max_tokens(cached: Engine) -> None:
    # SmolLM2 answers this one in a few tokens, then ends
    chat = (("user", "What is the capital of France? One word."),)
    short = GenerationRequest(messages=chat, max_tokens=64, temperature=0.0)
    done = list(cached.stream(short))[-1]
    assert isinstance(done, Done) and done.finish_reason == "stop" and done.completion_tokens < 64
    forced = list(cached.stream(dataclasses.replace(short, ignore_eos=True)))[-1]
    assert isinstance(forced, Done) and (forced.finish_reason, forced.completion_tokens) == (
        "length",
        64,
    )


def test_a_grammar_session_reuses_a_cached_prefix_and_still_follows_its_grammar(
    cached: Engine, uncached: Engine
) -> None:
    # the grammar lives in the session's sampler chain; the prompt's KV cells are shared
    assert text_of(list(cached.stream(greedy(SYSTEM + "Question: hello? Answer:", 4))))
    request = dataclasses.replace(
        greedy(SYSTEM + "Question: are you open on Monday? Yes or no? Answer:", 8),
        grammar='root ::= ("yes" | "no") "."',
    )
    before = cached.stats()
    with_cache = text_of(list(cached.stream(request)))
    after = cached.stats()
    assert after.prefix_cache_hits == before.prefix_cache_hits + 1
    assert after.prefix_cache_reused_tokens - before.prefix_cache_reused_tokens > 40
    assert with_cache in ("yes.", "no.")
    assert text_of(list(uncached.stream(request))) == with_cache


def test_running_sessions_of_two_cache_groups_share_no_cells(cached: Engine) -> None:
    def request(group: str) -> GenerationRequest:
        prompt = SYSTEM * 4 + "Question: who runs the reading club? Answer:"
        return dataclasses.replace(greedy(prompt, 4), cache_group=group)

    before = cached.stats().prefix_cache_hits
    sessions = [cached.submit(request(group)) for group in ("x", "y")]
    wait_until(lambda: cached.stats().active == 2)
    _, events = read_all(sessions)
    assert all(isinstance(e[-1], Done) for e in events)
    assert cached.stats().prefix_cache_hits == before  # "y" prefilled what "x" was reading
    assert text_of(list(cached.stream(request("y"))))
    assert cached.stats().prefix_cache_hits == before + 1  # from "y"'s own cached prompt


def test_serve_passes_no_prefix_cache_to_its_workers(smollm2: Path) -> None:
    model = ModelSettings(smollm2)
    on = ServeSettings(CoordinatorSettings(), model)
    off = ServeSettings(CoordinatorSettings(), model, prefix_cache=False)
    assert "--no-prefix-cache" not in worker_argv(on, 0, "http://127.0.0.1:1")
    assert "--no-prefix-cache" in worker_argv(off, 0, "http://127.0.0.1:1")
    infer = typer.main.get_command(app).commands["infer"]  # type: ignore[attr-defined]
    for command in ("serve", "worker"):
        params = infer.commands[command].params
        assert {"--prefix-cache", "--no-prefix-cache"} <= {
            flag for p in params for flag in (*p.opts, *getattr(p, "secondary_opts", []))
        }
