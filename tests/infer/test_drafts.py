"""Drafts from a session's own text: checked in the batch, same output, counted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main

from ishan_tools.cli import app
from ishan_tools.infer import GenerationRequest, ModelSettings
from ishan_tools.infer.config import DRAFT_MAX, CoordinatorSettings, ServeSettings
from ishan_tools.infer.coordinator.supervisor import worker_argv
from ishan_tools.infer.events import Done
from ishan_tools.infer.worker.app import worker_gauges
from ishan_tools.infer.worker.engine import Engine
from ishan_tools.infer.worker.lookup import Lookup

from .test_batching import read_all, text_of
from .test_prefix_cache import greedy as cache_greedy
from .test_prefix_cache import make_engine

# SmolLM2-135M repeats itself here, greedy and with its end token banned
LOOPING = "Count with me: one, two, three, one, two, three, one, two,"
STORY = "Once upon a time, in a small village by the sea,"
CODE = (
    "def area(width, height):\n    return width * height\n\n"
    "def perimeter(width, height):\n    return"
)


def test_lookup_drafts_what_followed_the_latest_copy_once_the_text_confirmed_it() -> None:
    assert Lookup(n=2).draft([7], 4) == []  # too short to match
    lookup = Lookup(n=2)
    assert lookup.draft([1, 2, 3, 4, 1, 2], 3) == []  # (1, 2) came once: not trusted yet
    # (1, 2) came twice, followed by 3 both times: draft what followed the latest copy
    assert lookup.draft([1, 2, 3, 4, 1, 2, 3, 5, 1, 2], 3) == [3, 5, 1]
    assert lookup.draft([1, 2, 3, 4, 1, 2, 3, 5, 1, 2], 9) == [3, 5, 1, 2]  # up to the end
    assert lookup.draft([1, 2, 3, 4, 1, 2, 3, 5, 1, 2], 0) == []
    # followed by 3, then by 5: the text disagrees with itself, so no draft
    assert Lookup(n=2).draft([1, 2, 3, 4, 1, 2, 5, 6, 1, 2], 2) == []
    # the latest copies decide: 3 once, then 5 twice
    assert Lookup(n=2).draft([1, 2, 3, 1, 2, 5, 1, 2, 5, 1, 2], 2) == [5, 1]
    # the decoder's: four tokens must match, so that fewer drafts are refused
    assert Lookup().draft([1, 2, 3, 4, 9, 1, 2, 3, 4, 9, 1, 2, 3, 4], 2) == [9, 1]
    assert Lookup().draft([1, 2, 3, 9, 1, 2, 3, 9, 2, 3, 4, 2, 3], 2) == []


def test_lookup_never_drafts_from_refused_positions() -> None:
    lookup = Lookup(n=2)
    tokens = [5, 6, 7, 8, 5, 6, 7, 0, 5, 6]
    assert lookup.draft(tokens, 2) == [7, 0]
    tokens += [9, 9, 9]  # the decoder tried a draft here and then dropped it
    del tokens[10:]
    tokens.append(4)  # the token the model picked instead
    assert lookup.draft(tokens, 3) == []  # (6, 4) is new; (6, 9) was never indexed
    tokens += [5, 6]
    assert lookup.draft(tokens, 2) == []  # (5, 6) was followed by 7, 7, then 4
    tokens += [4, 5, 6]
    assert lookup.draft(tokens, 2) == [4, 5]  # 4 twice now: the model's pick, not the 9


def engine_with(model: Path, draft_max: int) -> Engine:
    # without the prefix cache, both engines lay out their KV cache alike (see the docs'
    # internals/infer-engine.md)
    return make_engine(model, prefix_cache=False, slots=2, draft_max=draft_max)


@pytest.fixture(scope="module")
def drafting(smollm2: Path) -> Iterator[Engine]:
    engine = engine_with(smollm2, DRAFT_MAX)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def plain(smollm2: Path) -> Iterator[Engine]:
    engine = engine_with(smollm2, 0)
    yield engine
    engine.close()


def greedy(prompt: str, max_tokens: int, **extra: object) -> GenerationRequest:
    return dataclasses.replace(cache_greedy(prompt, max_tokens), **extra)  # type: ignore[arg-type]


def run(engine: Engine, request: GenerationRequest) -> tuple[str, Done]:
    events = list(engine.stream(request))
    done = events[-1]
    assert isinstance(done, Done), done
    return text_of(events), done


def test_greedy_output_is_the_same_with_drafts_and_most_drafts_are_kept(
    drafting: Engine, plain: Engine
) -> None:
    before = drafting.stats()
    for request in (
        greedy(LOOPING, 96, ignore_eos=True),
        greedy(CODE, 40, ignore_eos=True),
        greedy(STORY, 48),
    ):
        assert run(drafting, request) == run(plain, request), request.prompt
    stats = drafting.stats()
    drafted = stats.draft_tokens - before.draft_tokens
    kept = stats.draft_kept_tokens - before.draft_kept_tokens
    assert drafted > 40 and kept > drafted / 2  # the loop is drafted right
    assert plain.stats().draft_tokens == 0
    assert stats.kv_used_bytes == 0  # refused drafts left no cells behind
    metrics = {family.name: family.samples[0].value for family in worker_gauges(drafting)}
    assert metrics["ishan_infer_draft_tokens"] == stats.draft_tokens
    assert metrics["ishan_infer_draft_kept_tokens"] == stats.draft_kept_tokens


def test_drafts_stop_at_max_tokens_and_stop_strings_as_before(
    drafting: Engine, plain: Engine
) -> None:
    # every length from 1 to 12, so that the limit falls inside a kept draft somewhere
    kept_before = drafting.stats().draft_kept_tokens
    for max_tokens in range(1, 13):
        request = greedy(LOOPING, max_tokens, ignore_eos=True)
        text, done = run(drafting, request)
        assert (done.finish_reason, done.completion_tokens) == ("length", max_tokens)
        assert (text, done) == run(plain, request)
    assert drafting.stats().draft_kept_tokens > kept_before  # the prompt is drafted at once
    stopped = greedy(LOOPING, 64, ignore_eos=True, stop=("three, one",))
    text, done = run(drafting, stopped)
    assert done.finish_reason == "stop" and "three, one" not in text
    assert (text, done) == run(plain, stopped)


def test_concurrent_sessions_draft_side_by_side(drafting: Engine, plain: Engine) -> None:
    # Fixed prompts: side by side, drafts change where each sequence's cells lie in the KV
    # cache, and llama.cpp's logits move in their last bits with that (see the docs'
    # internals/infer-engine.md), so
    # a near tie may tip either way (" lived" 23.42 against " was" 23.37 after STORY with
    # LOOPING beside it).
    requests = [greedy(STORY, 48, ignore_eos=True), greedy(CODE, 48, ignore_eos=True)]
    outputs = []
    for engine in (drafting, plain):
        _, events = read_all([engine.submit(r) for r in requests])
        outputs.append([(text_of(e), e[-1]) for e in events])
    assert outputs[0] == outputs[1]
    assert all(isinstance(done, Done) and done.completion_tokens == 48 for _, done in outputs[0])


def test_sampled_and_grammar_sessions_draft_nothing(drafting: Engine) -> None:
    before = drafting.stats().draft_tokens
    sampled = dataclasses.replace(greedy(LOOPING, 32), temperature=0.7, seed=3)
    assert run(drafting, sampled)[0]
    grammar = greedy(LOOPING, 16, grammar='root ::= ("one, " | "two, ")+')
    text, _ = run(drafting, grammar)
    assert text and set(text.replace(",", " ").split()) <= {"one", "two"}
    assert drafting.stats().draft_tokens == before


def test_serve_passes_draft_max_to_its_workers(smollm2: Path) -> None:
    model = ModelSettings(smollm2)
    for draft_max in (0, 4, 7):
        settings = ServeSettings(CoordinatorSettings(), model, draft_max=draft_max)
        argv = worker_argv(settings, 0, "http://127.0.0.1:1")
        assert argv[argv.index("--draft-max") + 1] == str(draft_max)
    infer = typer.main.get_command(app).commands["infer"]  # type: ignore[attr-defined]
    for command in ("serve", "worker"):
        flags = {flag for p in infer.commands[command].params for flag in p.opts}
        assert "--draft-max" in flags
