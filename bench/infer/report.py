"""The infer benchmark's tables: medians over rounds, per-round ratios to the baseline."""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from ishan_tools.infer.timing import StreamTimer

from .clients import Timed
from .workloads import WORKLOADS


def aggregate(timed: list[Timed]) -> float:
    wall = max(t.last_at or 0 for t, _ in timed) - min(t.started for t, _ in timed)
    return sum(t.tokens for t, _ in timed) / wall


def ttfts(timed: list[Timed]) -> list[float]:
    return [t.ttft_s or float("nan") for t, _ in timed]


def report_concurrent(results: dict[int, dict[str, list[list[Timed]]]], n: int) -> None:
    first = next(iter(results.values()))
    clients = len(next(iter(first.values()))[0])
    # the ratios are to llama-server; to the first row when it was left out
    baseline = "llama-server" if "llama-server" in first else next(iter(first))
    print(f"\n{clients} concurrent clients x {n} tokens, greedy, ignore_eos; medians over rounds")
    head = f"{'server':18} {'aggregate tok/s':>15} {f'vs {baseline} (per round)':>34}"
    print(f"{'workload':40} {head} {'TTFT p50 s':>10} {'TTFT max s':>10} {'tokens':>7} {'cut':>4}")
    for workload, by_server in results.items():
        base = [aggregate(r) for r in by_server[baseline]]
        for name, rounds in by_server.items():
            rates = [aggregate(r) for r in rounds]
            ratios = [rate / b for rate, b in zip(rates, base, strict=True)]
            per_round = ", ".join(f"{r:.2f}" for r in ratios)
            vs = f"{statistics.median(ratios):.2f}x ({per_round})"
            p50 = statistics.median(statistics.median(ttfts(r)) for r in rounds)
            worst = statistics.median(max(ttfts(r)) for r in rounds)
            tokens = statistics.median(sum(t.tokens for t, _ in r) for r in rounds)
            cut = sum(1 for r in rounds for _, ok in r if not ok)
            label = WORKLOADS[workload] if name == baseline else ""
            print(
                f"{label:40} {name:18} {statistics.median(rates):>15.1f} {vs:>34} "
                f"{p50:>10.2f} {worst:>10.2f} {tokens:>7.0f} {cut:>4}"
            )


def report_single(samples: dict[str, list[StreamTimer]], args: argparse.Namespace) -> None:
    print(
        f"\none client, {args.tokens} tokens, ctx {args.ctx}, batch {args.batch}, "
        f"{args.threads} threads, greedy; median of {args.rounds} rounds"
    )
    direct = samples["direct"] if "direct" in samples else next(iter(samples.values()))
    base_ttft = statistics.median(t.ttft_s or 0 for t in direct)
    base_rates = [t.tokens_per_s or 0 for t in direct]
    head = f"{'':18} {'tokens':>6} {'TTFT ms':>8} {'Δ TTFT ms':>10} {'tok/s':>7}"
    print(f"{head} {'vs direct (per round)':>24}")
    for name, timers in samples.items():
        ttft = statistics.median(t.ttft_s or 0 for t in timers)
        rates = [t.tokens_per_s or 0 for t in timers]
        ratios = [rate / base for rate, base in zip(rates, base_rates, strict=True)]
        tokens = statistics.median(t.tokens for t in timers)
        per_round = " ".join(f"{r:.2f}" for r in ratios)
        print(
            f"{name:18} {tokens:>6.0f} {ttft * 1000:>8.1f} {(ttft - base_ttft) * 1000:>+10.1f} "
            f"{statistics.median(rates):>7.1f} {statistics.median(ratios):>7.1%} ({per_round})"
        )
    print("target for ishan: tok/s at least 95% of direct (the median of the per-round ratios)")


def report_machine(model: Path, before: tuple[float, float, float]) -> None:
    """The model, the cores and the load average before and after the run."""
    after = os.getloadavg()
    print(
        f"model {model.name}; machine: {os.cpu_count()} cores, load average (1, 5, 15 min) "
        f"{before[0]:.2f} {before[1]:.2f} {before[2]:.2f} before, "
        f"{after[0]:.2f} {after[1]:.2f} {after[2]:.2f} after"
    )
