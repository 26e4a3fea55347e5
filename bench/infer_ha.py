"""One coordinator alone, or two behind nginx: the warm-shared-prefix workload on two workers.

The same two workers (`ishan infer worker`, SmolLM2, `--threads 1` each, heartbeats to every
coordinator below) serve, in turn within each round (the order alternates, so machine drift
hits both alike):

  one coordinator      `ishan infer coordinator`, asked straight (no balancer);
  two coordinators     two more `ishan infer coordinator`s behind a real nginx (round robin,
                       `proxy_buffering off`: the config of docs/infer/coordinators.md), so
                       clients 1 and 3 of a round reach one coordinator, 2 and 4 the other.

The workload is workload 2 of `bench/infer.py`: `--clients` (4) clients start together, 128
tokens each with `ignore_eos`, a shared ~240-token system prefix that the workers saw before
(warm: each worker is sent it once first) plus a question new every round (and distinct per
setup, so neither setup reuses the other's whole prompts). Per round and setup: aggregate
tok/s (all tokens over the round's wall time), the prefix-cache hit rate (sessions that
copied the cached prefix instead of prefilling it, over the sessions completed in the round,
read from the workers' counters), how the sessions spread over the two workers, and how many
a coordinator withdrew from a worker that had queued them (see `relay._start`); medians over
rounds, and per-round ratios of the two setups. Targets (issue 25): hit rate at least 90% of
one coordinator's, tok/s at least 0.9x.

    python -m bench.infer_ha [--rounds 5] [--slots 4] [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.infer.clients import Server, Timed, process, socket_lines, sse_stream, wait_for_workers
from bench.infer.report import aggregate, ttfts
from bench.infer.workloads import QUESTIONS, SYSTEM, concurrent_round
from ishan_tools.infer.config import default_model_path
from tests.harness.nginx import NGINX, Nginx
from tests.harness.ports import free_port

SETUPS = ("one coordinator", "two + nginx")
Counts = list[tuple[int, int, int]]  # per worker: completed, prefix-cache hits, cancelled


def coordinator_server(name: str, url: str, max_tokens: int) -> Server:
    """Streams `/coordinator/infer` at `url` (a coordinator, or nginx in front of two)."""

    def stream(prompt: str, ignore_eos: bool) -> Timed:
        body = {"model": "m", "prompt": prompt, "raw": True, "ignore_eos": ignore_eos}
        body |= {"max_tokens": max_tokens, "temperature": 0.0}
        return sse_stream(socket_lines, f"{url}/coordinator/infer", body, lambda e: e["token"])

    return Server(name, stream)


def worker_counts(worker_urls: list[str]) -> Counts:
    """(sessions completed, prefix-cache hits, sessions withdrawn or cancelled) of each
    worker, once none has a session left (a stream's last event reaches its client a moment
    before its worker counts it)."""
    counts = []
    for url in worker_urls:
        deadline = time.monotonic() + 10
        while (health := httpx.get(f"{url}/worker/health", timeout=10).json())["sessions"]:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} still has {health['sessions']} sessions after 10 s")
            time.sleep(0.05)
        counts.append((health["completed"], health["prefix_cache_hits"], health["cancelled"]))
    return counts


def prompts_for(setup: str, round_: int, clients: int) -> list[str]:
    tag = "A" if setup == SETUPS[0] else "B"
    return [
        f"{SYSTEM}Customer {tag}{round_}-{i}: {QUESTIONS[i % len(QUESTIONS)]}\nMarlow:"
        for i in range(clients)
    ]


class Measured:
    """One setup's rounds: aggregate tok/s, hit rate, sessions per worker, TTFTs, cuts."""

    def __init__(self) -> None:
        self.rates: list[float] = []
        self.hits: list[float] = []
        self.spread: list[list[int]] = []
        self.withdrawn: list[int] = []
        self.ttft: list[float] = []
        self.tokens: list[int] = []
        self.cut = 0

    def add(
        self,
        timed: list[Timed],
        before: list[tuple[int, int, int]],
        after: list[tuple[int, int, int]],
    ) -> None:
        self.rates.append(aggregate(timed))
        sessions = [a[0] - b[0] for a, b in zip(after, before, strict=True)]
        hits = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
        self.hits.append(hits / max(1, sum(sessions)))
        self.spread.append(sessions)
        self.withdrawn.append(sum(a[2] - b[2] for a, b in zip(after, before, strict=True)))
        self.ttft.append(statistics.median(ttfts(timed)))
        self.tokens.append(sum(t.tokens for t, _ in timed))
        self.cut += sum(1 for _, ok in timed if not ok)


def ratios(values: list[float]) -> str:
    """The median ratio, then each round's."""
    return f"{statistics.median(values):.2f}x ({' '.join(f'{r:.2f}' for r in values)})"


def report(results: dict[str, Measured], args: argparse.Namespace) -> None:
    base = results[SETUPS[0]]
    print(
        f"\n{args.clients} concurrent clients x {args.tokens} tokens, warm shared ~240-token "
        f"prefix + a new question, greedy, ignore_eos; medians over {args.rounds} rounds"
    )
    head = "setup|tok/s|vs one (per round)|hit rate|vs one (per round)|sessions per worker"
    rows = [[*head.split("|"), "withdrawn", "TTFT p50 s", "tokens", "cut"]]
    for name, m in results.items():
        rate_ratios = [r / b for r, b in zip(m.rates, base.rates, strict=True)]
        hit_ratios = [h / b if b else float("nan") for h, b in zip(m.hits, base.hits, strict=True)]
        rows.append(
            [
                name,
                f"{statistics.median(m.rates):.1f}",
                ratios(rate_ratios),
                f"{statistics.median(m.hits):.0%}",
                ratios(hit_ratios),
                " ".join("/".join(map(str, s)) for s in m.spread),
                " ".join(map(str, m.withdrawn)),
                f"{statistics.median(m.ttft):.2f}",
                f"{statistics.median(m.tokens):.0f}",
                str(m.cut),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells))
    print("vs one: the median of the per-round ratios to the one-coordinator setup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--slots", type=int, default=4, help="per worker")
    parser.add_argument("--ctx", type=int, default=2048, help="per session")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    model = args.model or default_model_path()
    ishan = [sys.executable, "-m", "ishan_tools", "infer"]
    ports = [free_port() for _ in range(3)]  # the lone coordinator, then the pair
    coordinators = [f"http://127.0.0.1:{port}" for port in ports]
    worker_ports = [free_port() for _ in range(2)]
    workers = [f"http://127.0.0.1:{port}" for port in worker_ports]
    worker_args = [
        "--model", str(model), "--threads", "1", "--ctx", str(args.ctx),
        "--slots", str(args.slots), "--heartbeat-interval", "1",
    ]  # fmt: skip
    load_before = os.getloadavg()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        for url, port in zip(coordinators, ports, strict=True):
            command = [*ishan, "coordinator", "--port", str(port)]
            stack.enter_context(
                process(command, f"{url}/coordinator/health", lambda r: r.is_success)
            )
        for index, port in enumerate(worker_ports):
            command = [
                *ishan, "worker", "--worker-id", f"w{index + 1}", "--port", str(port),
                *(arg for url in coordinators for arg in ("--coordinator-url", url)),
                *worker_args,
            ]  # fmt: skip
            stack.enter_context(
                process(command, f"{workers[index]}/worker/health", lambda r: r.is_success)
            )
        for url in coordinators:
            wait_for_workers(url, 2)
        nginx = Nginx(coordinators[1:], Path(folder) / "nginx")
        stack.callback(nginx.stop)
        version = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr
        version = version.strip().removeprefix("nginx version: ")
        servers = [
            coordinator_server(SETUPS[0], coordinators[0], args.tokens),
            coordinator_server(SETUPS[1], nginx.url, args.tokens),
        ]
        print(
            f"workers: 2 x ishan infer worker {' '.join(worker_args[2:])} "
            f"--model {model.name}, heartbeats to all 3 coordinators"
        )
        print(f"one coordinator: ishan infer coordinator, asked straight; two: behind {version}")
        warm = {
            "model": "m",
            "prompt": f"{SYSTEM}{QUESTIONS[0]}\nMarlow:",
            "raw": True,
            "max_tokens": 8,
        }
        for url in workers:  # warm-up: both workers page in the weights, see the prefix
            httpx.post(f"{url}/worker/generate", json=warm, timeout=120).raise_for_status()
        for server in servers:
            server.one(f"{SYSTEM}{QUESTIONS[1]}\nMarlow:")
        results = {name: Measured() for name in SETUPS}
        for round_ in range(args.rounds):
            order = servers if round_ % 2 == 0 else servers[::-1]
            for server in order:
                before = worker_counts(workers)
                timed = concurrent_round(server, prompts_for(server.name, round_, args.clients))
                results[server.name].add(timed, before, worker_counts(workers))
    load_after = os.getloadavg()
    print(
        f"model {model.name}; machine: {os.cpu_count()} cores, load average (1, 5, 15 min) "
        f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} before, "
        f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} after"
    )
    report(results, args)


if __name__ == "__main__":
    main()
