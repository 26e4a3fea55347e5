"""A fair share between tenants: first-come order against weighted fair order, in one run.

One worker (`ishan infer worker`, SmolLM2, `--slots 8`, both cores) reports to two
coordinators: a plain one (one shared key: the worker's queue is first come, first served)
and one with a tenants file (tenants A and B, weight 1 each, no quotas: its requests carry
their tenant, and the worker's queue admits them in weighted fair order). The phases
alternate between the two (plain, tenants, tenants, plain, ...), so machine drift hits
both alike. In each phase:

  tenant A  keeps 32 streams of 128 tokens (`ignore_eos`) in flight: a new one as each ends
            (their first ones of staggered lengths, so they end one by one, not in waves);
  tenant B  sends one 32-token request at a time, and times its first token.

After a warm-up, each phase measures `--seconds`: B's first-token times (p50, p95: every
request B sent in the window, the last one awaited after it), A's and the total tokens/s
(tokens that reached the clients over the window), and the
coordinator's CPU per token (its process's user + system time over the window, from
/proc, over the tokens it relayed). Printed side by side, with the ratios tenants / plain.

    python -m bench.infer_tenants [--phases 4] [--seconds 100] [--slots 8] [--model PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.infer.clients import process, wait_for_workers
from bench.infer_relay import cpu_s
from ishan_tools.infer.config import default_model_path
from ishan_tools.infer.tenants.book import Tenant, hash_key, save
from tests.harness.ports import free_port
from tests.harness.waiting import wait_until

CLUSTER_KEY = "bench-cluster-key"
KEYS = {"A": "bench-key-a", "B": "bench-key-b"}
A_STREAMS, A_TOKENS, B_TOKENS = 32, 128, 32


def ready(response: httpx.Response) -> bool:
    return response.is_success


class Phase:
    """One phase's figures."""

    def __init__(self) -> None:
        self.tokens = {"A": 0, "B": 0}
        self.ttft: list[float] = []
        self.measuring = False
        self.cpu = 0.0  # the coordinator's CPU seconds over the window
        self.wall = 0.0
        self.began = False
        self.b_after = asyncio.Event()

    def count(self, tenant: str) -> None:
        if self.measuring:
            self.tokens[tenant] += 1


async def stream(
    client: httpx.AsyncClient, url: str, key: str, tokens: int, prompt: str, on_token: Any
) -> float | None:
    """One streamed request, `on_token()` at each token; its first-token time."""
    body = {"model": "m", "prompt": prompt, "max_tokens": tokens, "ignore_eos": True}
    headers = {"authorization": f"Bearer {key}"}
    sent = time.monotonic()
    first = None
    async with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {await response.aread()!r}")
        async for line in response.aiter_lines():
            if line.startswith("data: ") and '"finished": false' in line:
                on_token()
                if first is None:
                    first = time.monotonic() - sent
    return first


async def a_loop(client: httpx.AsyncClient, url: str, key: str, phase: Phase, n: int) -> None:
    """One of A's streams, again and again. The first is cut to a share of the length (the
    n-th of 32 gets n/32 of it), so that A's streams end one after another, as in a steady
    state, not all 32 at once in waves."""
    i = 0
    while True:
        i += 1
        tokens = A_TOKENS if i > 1 else max(1, A_TOKENS * (n + 1) // A_STREAMS)
        await stream(
            client, url, key, tokens, f"Tell story {n}-{i} of a ship.", lambda: phase.count("A")
        )


async def b_loop(client: httpx.AsyncClient, url: str, key: str, phase: Phase) -> None:
    """B's requests one after another; the first-token times of those sent in the window."""
    i = 0
    while True:
        i += 1
        counted = phase.measuring
        first = await stream(
            client, url, key, B_TOKENS, f"Question {i}: name a colour.", lambda: phase.count("B")
        )
        if counted and first is not None:
            phase.ttft.append(first)
        if not phase.measuring and phase.began:
            phase.b_after.set()  # the last request sent in the window has its answer


async def run_phase(url: str, keys: dict[str, str], pid: int, args: argparse.Namespace) -> Phase:
    phase = Phase()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        target = f"{url}/coordinator/infer"
        tasks = [
            asyncio.create_task(a_loop(client, target, keys["A"], phase, n))
            for n in range(A_STREAMS)
        ]
        tasks.append(asyncio.create_task(b_loop(client, target, keys["B"], phase)))
        await asyncio.sleep(args.warmup)
        phase.measuring = phase.began = True
        cpu, began = cpu_s(pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        phase.measuring = False
        phase.cpu = cpu_s(pid) - cpu
        phase.wall = time.monotonic() - began
        for task in tasks[:-1]:
            task.cancel()
        # B's request sent inside the window may still wait for its first token (first come
        # order: behind A's queue); let it finish, with A gone
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(phase.b_after.wait(), 300)
        tasks[-1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return phase


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def idle(worker: str) -> None:
    wait_until(lambda: httpx.get(f"{worker}/worker/health").json()["sessions"] == 0, 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=4, help="alternating, half each")
    parser.add_argument("--seconds", type=float, default=100.0, help="measured per phase")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    model = args.model or default_model_path()
    ishan = [sys.executable, "-m", "ishan_tools", "infer"]
    plain_port, tenant_port, worker_port = free_port(), free_port(), free_port()
    plain, tenanted = f"http://127.0.0.1:{plain_port}", f"http://127.0.0.1:{tenant_port}"
    worker = f"http://127.0.0.1:{worker_port}"
    results: dict[str, list[Phase]] = {"plain": [], "tenants": []}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tenants.toml"
        save(path, [Tenant(name, (hash_key(key),)) for name, key in KEYS.items()])
        pids = {}
        for name, port, extra in (
            ("plain", plain_port, []),
            ("tenants", tenant_port, ["--tenants", str(path)]),
        ):
            argv = [*ishan, "coordinator", "--port", str(port), "--api-key", CLUSTER_KEY, *extra]
            health = f"http://127.0.0.1:{port}/coordinator/health"
            pids[name] = stack.enter_context(process(argv, health, ready)).pid
        stack.enter_context(process([
            *ishan, "worker", "--port", str(worker_port), "--model", str(model),
            "--slots", str(args.slots), "--threads", str(os.cpu_count() or 2),
            "--api-key", CLUSTER_KEY, "--coordinator-url", plain,
            "--coordinator-url", tenanted, "--heartbeat-interval", "1",
        ], f"{worker}/worker/health", ready))  # fmt: skip
        for url in (plain, tenanted):
            wait_for_workers(url, 1)
        order = ["plain", "tenants", "tenants", "plain"] * args.phases
        for name in order[: args.phases]:
            url = plain if name == "plain" else tenanted
            keys = {t: CLUSTER_KEY for t in KEYS} if name == "plain" else KEYS
            phase = asyncio.run(run_phase(url, keys, pids[name], args))
            results[name].append(phase)
            print(f"{name:8} B first token p50 {percentile(phase.ttft, 0.5):6.2f} s "
                  f"p95 {percentile(phase.ttft, 0.95):6.2f} s (n={len(phase.ttft)}), "
                  f"A {phase.tokens['A'] / phase.wall:6.1f} tok/s, "
                  f"total {sum(phase.tokens.values()) / phase.wall:6.1f} tok/s",
                  flush=True)  # fmt: skip
            idle(worker)
    report(results, args)


def report(results: dict[str, list[Phase]], args: argparse.Namespace) -> None:
    rows = []
    for name, phases in results.items():
        ttft = [t for p in phases for t in p.ttft]
        wall = sum(p.wall for p in phases)
        a = sum(p.tokens["A"] for p in phases) / wall
        total = sum(sum(p.tokens.values()) for p in phases) / wall
        cpu = sum(p.cpu for p in phases) / max(1, sum(sum(p.tokens.values()) for p in phases))
        rows.append((name, percentile(ttft, 0.5), percentile(ttft, 0.95), len(ttft), a, total, cpu))
    print(
        f"\nA: {A_STREAMS} streams x {A_TOKENS} tokens in flight; B: one {B_TOKENS}-token "
        f"request at a time; one worker, --slots {args.slots}; {args.phases} phases of "
        f"{args.seconds:g} s, alternating"
    )
    print(f"{'order':<22}{'B TTFT p50':>11}{'B TTFT p95':>11}{'B reqs':>7}{'A tok/s':>9}"
          f"{'total tok/s':>12}{'coord CPU/token':>16}")  # fmt: skip
    for name, p50, p95, n, a, total, cpu in rows:
        label = "first come (plain)" if name == "plain" else "weighted fair (tenants)"
        print(f"{label:<22}{p50:>10.2f}s{p95:>10.2f}s{n:>7}{a:>9.1f}{total:>12.1f}"
              f"{cpu * 1e6:>13.0f} us")  # fmt: skip
    plain, tenants = rows
    print(
        f"tenants / plain: B TTFT p95 {plain[2] / tenants[2]:.1f}x better, "
        f"A tok/s {tenants[4] / plain[4]:.2f}x, total tok/s {tenants[5] / plain[5]:.2f}x, "
        f"coordinator CPU per token {tenants[6] / plain[6]:.2f}x"
    )


if __name__ == "__main__":
    main()
