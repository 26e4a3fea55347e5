"""The coordinator's CPU per token with the tenants' limits kept in Redis (`--state`) or not.

One worker (`ishan infer worker`, SmolLM2 by default, `--threads 1 --slots 8`: the other
core is left to the coordinators, Redis and the clients) sends heartbeats to two
coordinators with the same tenants file, which take turns within each round (the order
alternates, so machine drift hits both alike):

  local      `ishan infer coordinator --tenants FILE`: each tenant's quotas in the process;
  --state    the same with `--state redis://...` on a real redis-server (the tests'
             harness): an acquire, a charge and a release script per stream.

A phase is `--streams` (8) concurrent streams of `--tokens` (128) tokens each (`ignore_eos`,
greedy) through `/v1/completions`, half of them from each of two tenants whose limits are
high enough never to refuse (so every acquire runs its whole script: sessions, tokens).
The coordinator's CPU time (user + system, /proc/PID/stat) over the phase, divided by the
tokens its clients received: the median phase over `--rounds`, all phases together (the
figure least cut by the clock's 10 ms ticks), and the per-round ratios of --state to local.
For Redis, its own time in the scripts (`INFO commandstats`) per token, and the scripts
per stream (round trips: acquire, charge, release, plus the lease renewals) in the
--state phases.

    python -m bench.infer_state [--rounds 7] [--streams 8] [--tokens 128] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import redis

from bench.infer.clients import process, wait_for_workers
from bench.infer_relay import cpu_s
from ishan_tools.infer.config import default_model_path
from ishan_tools.infer.tenants.book import Tenant, hash_key, new_key, save
from tests.harness.ports import free_port
from tests.harness.redis_server import RedisServer

SETUPS = ("local", "--state")
CLUSTER_KEY = "bench-cluster-key"


def tenants_file(path: Path) -> list[str]:
    """Two tenants with limits that never refuse here; their keys."""
    keys = [new_key() for _ in range(2)]
    save(
        path,
        [
            Tenant(f"team-{i}", (hash_key(key),), max_sessions=64, tokens_per_minute=10**8)
            for i, key in enumerate(keys)
        ],
    )
    return keys


def stream(url: str, key: str, tokens: int, prompt: str) -> int:
    """One streamed completion; the tokens that came back."""
    body = {"model": "m", "prompt": prompt, "stream": True, "max_tokens": tokens}
    body |= {"ignore_eos": True, "temperature": 0}
    headers = {"authorization": f"Bearer {key}"}
    received = 0
    with (
        httpx.Client(timeout=600) as client,
        client.stream("POST", f"{url}/v1/completions", json=body, headers=headers) as answer,
    ):
        answer.raise_for_status()
        for line in answer.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["text"]:
                received += 1
    return received


def phase(url: str, keys: list[str], streams: int, tokens: int, tag: str) -> int:
    """`streams` concurrent streams, started together, alternately of each tenant."""
    start = threading.Barrier(streams)

    def one(index: int) -> int:
        start.wait()
        prompt = f"Story {tag}-{index}: once upon a time"
        return stream(url, keys[index % len(keys)], tokens, prompt)

    with ThreadPoolExecutor(streams) as pool:
        return sum(pool.map(one, range(streams)))


def redis_scripts(client: redis.Redis) -> tuple[int, int]:
    """The scripts Redis ran since its start (EVALSHA: one a round trip), and the
    microseconds it spent in them, the commands they call included."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return stats["calls"], stats["usec"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--streams", type=int, default=8, help="concurrent, per phase")
    parser.add_argument("--tokens", type=int, default=128, help="per stream")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    model = args.model or default_model_path()
    ishan = [sys.executable, "-m", "ishan_tools", "infer"]
    load_before = os.getloadavg()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder) / "redis")
        server.start()
        stack.callback(server.stop)
        client = redis.Redis(port=server.port)
        stack.callback(client.close)
        keys = tenants_file(Path(folder) / "tenants.toml")
        common = ["--tenants", str(Path(folder) / "tenants.toml"), "--api-key", CLUSTER_KEY]
        options = {"local": [], "--state": ["--state", server.url()]}
        ports = {setup: free_port() for setup in SETUPS}
        urls = {setup: f"http://127.0.0.1:{port}" for setup, port in ports.items()}
        pids = {}
        for setup in SETUPS:
            command = [*ishan, "coordinator", "--port", str(ports[setup]), *common]
            ready = f"{urls[setup]}/coordinator/health"
            coordinator = process([*command, *options[setup]], ready, lambda r: r.is_success)
            pids[setup] = stack.enter_context(coordinator).pid
        worker_port = free_port()
        worker = [
            *ishan, "worker", "--port", str(worker_port), "--model", str(model),
            "--model-name", "m", "--api-key", CLUSTER_KEY, "--threads", "1",
            "--slots", str(args.streams),
            "--heartbeat-interval", "1",
            *(arg for url in urls.values() for arg in ("--coordinator-url", url)),
        ]  # fmt: skip
        stack.enter_context(
            process(worker, f"http://127.0.0.1:{worker_port}/worker/health", lambda r: r.is_success)
        )
        for url in urls.values():
            wait_for_workers(url, 1)
            phase(url, keys, 2, 8, "warm")  # page in the weights; the first scripts load
        cpu: dict[str, list[float]] = {setup: [] for setup in SETUPS}  # seconds a phase
        tokens: dict[str, list[int]] = {setup: [] for setup in SETUPS}
        in_redis: list[float] = []  # us a token
        scripts: list[float] = []  # a stream
        for round_ in range(args.rounds):
            for setup in SETUPS if round_ % 2 == 0 else SETUPS[::-1]:
                before, (calls_before, usec_before) = cpu_s(pids[setup]), redis_scripts(client)
                received = phase(urls[setup], keys, args.streams, args.tokens, f"{round_}")
                if received < args.streams * args.tokens:
                    raise SystemExit(f"{setup}: {received} of {args.streams * args.tokens} tokens")
                cpu[setup].append(cpu_s(pids[setup]) - before)
                tokens[setup].append(received)
                if setup == "--state":
                    calls_after, usec_after = redis_scripts(client)
                    in_redis.append((usec_after - usec_before) / received)
                    scripts.append((calls_after - calls_before) / args.streams)
    load_after = os.getloadavg()
    print(
        f"model {model.name}, one worker --threads 1 --slots {args.streams}; "
        f"{args.streams} concurrent streams x {args.tokens} tokens from 2 tenants per phase; "
        f"{args.rounds} rounds; machine: {os.cpu_count()} cores, load average (1, 5, 15 min) "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.2f}' for x in load_after)} after"
    )
    report(cpu, tokens)
    print(
        f"Redis in the --state phases: {statistics.median(in_redis):.2f} us/token in scripts "
        f"(per round: {' '.join(f'{v:.2f}' for v in in_redis)}), "
        f"{statistics.median(scripts):.2f} scripts a stream"
    )


def report(cpu: dict[str, list[float]], tokens: dict[str, list[int]]) -> None:
    """The coordinators' CPU per token: the median phase, all phases together, each phase."""
    per_round = {
        setup: [c / t * 1e6 for c, t in zip(cpu[setup], tokens[setup], strict=True)]
        for setup in SETUPS
    }
    total = {setup: sum(cpu[setup]) / sum(tokens[setup]) * 1e6 for setup in SETUPS}
    print(
        f"{'coordinator':12} {'median us/token':>16} {'all rounds':>11} {'vs local':>9}  per round"
    )
    for setup in SETUPS:
        median = statistics.median(per_round[setup])
        each = " ".join(f"{v:.0f}" for v in per_round[setup])
        ratio = total[setup] / total["local"]
        print(f"{setup:12} {median:>16.1f} {total[setup]:>11.1f} {ratio:>8.2f}x  {each}")
    ratios = [s / b for s, b in zip(per_round["--state"], per_round["local"], strict=True)]
    print(
        f"--state / local per round: {' '.join(f'{r:.2f}' for r in ratios)} "
        f"(median {statistics.median(ratios):.2f}x); /proc/PID/stat counts "
        f"{1000 / os.sysconf('SC_CLK_TCK'):.0f} ms ticks, about "
        f"{1e6 / os.sysconf('SC_CLK_TCK') / statistics.median(tokens['local']):.0f} us/token "
        "of one phase"
    )


if __name__ == "__main__":
    main()
