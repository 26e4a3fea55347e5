"""What trying a grammar in the worker's child process costs, beside compiling it in-process.

Baseline: `llama_sampler_init_grammar` on the model's vocabulary in this process (what the
worker did before: no protection). Then `GrammarChecker.grammar_for`: the first grammar of a
worker's life (the child starts: imports, the vocabulary), a new grammar (the child is up:
convert, compile, sample 4 steps, over a pipe), and one seen before (the verdict cache).
Medians of --rounds each, milliseconds, and ratios to the baseline.

    .venv/bin/python bench/infer_grammar_check.py [--model PATH] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import llama_cpp

from ishan_tools.infer.config import GenerationRequest, default_model_path
from ishan_tools.infer.worker.grammar_check import GrammarChecker

GRAMMAR = 'root ::= "{" ws "\\"n\\":" ws num ws "}"\nnum ::= [0-9]{1,%d}\nws ::= [ ]?'


def median_ms(run: Callable[[int], object], rounds: int) -> float:
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        run(i)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model = args.model or default_model_path()

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    loaded = llama_cpp.llama_model_load_from_file(str(model).encode(), params)
    vocab = llama_cpp.llama_model_get_vocab(loaded)

    def in_process(i: int) -> None:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, (GRAMMAR % (i + 2)).encode(), b"root")
        llama_cpp.llama_sampler_free(sampler)

    def request(i: int) -> GenerationRequest:
        return GenerationRequest(prompt="x", grammar=GRAMMAR % (i + 2))

    baseline = median_ms(in_process, args.rounds)

    def first(i: int) -> None:
        checker = GrammarChecker(model)
        checker.grammar_for(request(i))
        checker.close()

    cold = median_ms(first, args.rounds)
    checker = GrammarChecker(model)
    checker.grammar_for(request(1000))  # the child is up
    warm = median_ms(lambda i: checker.grammar_for(request(i + 100)), args.rounds)
    cached = median_ms(lambda i: checker.grammar_for(request(i + 100)), args.rounds)
    checker.close()
    llama_cpp.llama_model_free(loaded)

    print(f"model: {model.name}, {args.rounds} rounds, medians")
    print(f"{'':38} {'ms':>9} {'x baseline':>11}")
    rows = [
        ("in-process compile (baseline)", baseline),
        ("child: first grammar (child starts)", cold),
        ("child: a new grammar", warm),
        ("child: a grammar seen before (cache)", cached),
    ]
    for name, ms in rows:
        print(f"{name:38} {ms:9.2f} {ms / baseline:11.1f}")


if __name__ == "__main__":
    main()
