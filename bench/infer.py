"""Time to first token and tokens/s: one client, then 4 concurrent clients, 128 tokens each.

Single client, three ways:

  (a) llama-cpp-python called directly in this process (the baseline);
  (b) llama-cpp-python's own server, `python -m llama_cpp.server` (OpenAI streaming API);
  (c) `ishan infer serve` with one worker (coordinator API, `POST /coordinator/infer`).

Same model, prompt, context, batch and threads everywhere; greedy sampling; the prompt is
read verbatim everywhere (`"raw": true` on the coordinator API, whose default is the chat
template). The three run in turn within each round (so machine load hits them alike); a
round's prompt differs from the last round's so that every request prefills. Prints
medians and ratios to (a).

Concurrent: `--clients` (4) clients start together against (b), run with
`--interrupt_requests false` so it serves one request at a time without cutting any off,
and against (c), which decodes them in one batch. Per client: TTFT and decode tok/s;
overall: aggregate tok/s (all tokens over the wall time of the round) and any stream cut
off (ended without its last event). Medians over `--concurrent-rounds` rounds.

    python bench/infer.py [--rounds 7] [--tokens 128] [--threads 2] [--clients 4] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
from llama_cpp import Llama

from ishan_tools.infer.config import default_model_path
from ishan_tools.infer.timing import StreamTimer

PROMPT = "Story {n}. Once upon a time, in a small village by the sea, there lived"
Measure = Callable[[str], StreamTimer]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def process(
    argv: list[str], ready_url: str, ready: Callable[[httpx.Response], bool]
) -> Iterator[None]:
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "MODEL_PATH")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{argv[:4]} exited with {proc.returncode}")
            try:
                if ready(httpx.get(ready_url, timeout=2)):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{argv[:4]} did not start")
            time.sleep(0.2)
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sse_tokens(
    client: httpx.Client, url: str, body: dict[str, object], pick: Callable[[dict], str | None]
) -> StreamTimer:  # type: ignore[type-arg]
    """One streamed request through a long-lived client (as an OpenAI client would make)."""
    return sse_stream(client, url, body, pick)[0]


def sse_stream(
    client: httpx.Client, url: str, body: dict[str, object], pick: Callable[[dict], str | None]
) -> tuple[StreamTimer, bool]:  # type: ignore[type-arg]
    """The stream's timer, and whether it ended with its last event (not cut off)."""
    timer = StreamTimer()
    ended = False
    try:
        with client.stream("POST", url, json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line == "data: [DONE]":
                    ended = True
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if event.get("finished") is True and "error" not in event:
                    ended = True
                text = pick(event)
                if text:
                    timer.token()
    except httpx.HTTPError:
        ended = False
    return timer, ended


Stream = Callable[[httpx.Client, str], tuple[StreamTimer, bool]]


def concurrent_round(stream: Stream, clients: int, prompt: str) -> list[tuple[StreamTimer, bool]]:
    """`clients` streams started together, each on its own connection."""
    start = threading.Barrier(clients)

    def one(index: int) -> tuple[StreamTimer, bool]:
        with httpx.Client(timeout=600) as client:
            start.wait()
            return stream(client, f"{prompt} (client {index})")

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(clients)))


def report_concurrent(results: dict[str, list[list[tuple[StreamTimer, bool]]]], n: int) -> None:
    clients = len(next(iter(results.values()))[0])
    print(f"\n{clients} concurrent clients, {n} tokens each; median over rounds")
    header = "".join(f"{f'#{i + 1} TTFT s':>11} {'tok/s':>6}" for i in range(clients))
    print(f"{'':31}{header} {'aggregate':>10} {'cut off':>8}")
    aggregates: dict[str, float] = {}
    for name, rounds in results.items():
        cells = ""
        for i in range(clients):  # clients in the order their first token came
            by_ttft = [sorted(r, key=lambda p: p[0].ttft_s or 1e9)[i][0] for r in rounds]
            ttft = statistics.median(t.ttft_s or 0 for t in by_ttft)
            rate = statistics.median(t.tokens_per_s or 0 for t in by_ttft)
            cells += f"{ttft:>11.2f} {rate:>6.1f}"
        aggregate = statistics.median(
            sum(t.tokens for t, _ in r)
            / (max(t.last_at or 0 for t, _ in r) - min(t.started for t, _ in r))
            for r in rounds
        )
        aggregates[name] = aggregate
        cut = sum(1 for r in rounds for _, ok in r if not ok)
        print(f"{name:31}{cells} {aggregate:>10.1f} {cut:>8}")
    (b, base), (c, rate) = list(aggregates.items())
    print(f"aggregate {c.split()[0]} / {b.split()[0]}: {rate / base:.2f}x (target >= 1.5x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--concurrent-rounds", type=int, default=3)
    args = parser.parse_args()
    model = args.model or default_model_path()
    n = args.tokens
    common = {"max_tokens": n, "temperature": 0.0}

    llama = Llama(str(model), n_ctx=args.ctx, n_batch=args.batch, n_threads=args.threads,
                  n_threads_batch=args.threads, verbose=False)  # fmt: skip

    def direct(prompt: str) -> StreamTimer:
        timer = StreamTimer()
        for chunk in llama.create_completion(prompt, stream=True, **common):  # type: ignore[arg-type]
            if chunk["choices"][0]["text"]:  # type: ignore[index]
                timer.token()
        return timer

    client = httpx.Client(timeout=120)
    server_port, ishan_port = free_port(), free_port()
    llama_server = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model),
        "--n_ctx", str(args.ctx), "--n_batch", str(args.batch),
        "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
        "--host", "127.0.0.1", "--port", str(server_port), "--interrupt_requests", "false",
    ]  # fmt: skip
    ishan_serve = [
        sys.executable, "-m", "ishan_tools", "infer", "serve", "--model", str(model),
        "--ctx", str(args.ctx), "--batch", str(args.batch), "--workers", "1",
        "--port", str(ishan_port), "--worker-port", "0", "--heartbeat-interval", "1",
        "--slots", str(args.clients),
    ]  # fmt: skip

    def llama_cpp_server(prompt: str) -> StreamTimer:
        url = f"http://127.0.0.1:{server_port}/v1/completions"
        body = {"model": "m", "prompt": prompt, "stream": True, **common}
        return sse_tokens(client, url, body, lambda e: e["choices"][0]["text"])

    def ishan(prompt: str) -> StreamTimer:
        url = f"http://127.0.0.1:{ishan_port}/coordinator/infer"
        body = {"model": "m", "prompt": prompt, "raw": True, **common}  # as (a) and (b) read it
        return sse_tokens(client, url, body, lambda e: e["token"])

    ways: dict[str, Measure] = {
        "(a) llama-cpp-python direct": direct,
        "(b) python -m llama_cpp.server": llama_cpp_server,
        "(c) ishan infer serve": ishan,
    }
    samples: dict[str, list[StreamTimer]] = {name: [] for name in ways}
    server_ready = f"http://127.0.0.1:{server_port}/v1/models"
    ishan_ready = f"http://127.0.0.1:{ishan_port}/coordinator/health/workers"
    with (
        process(llama_server, server_ready, lambda r: r.is_success),
        process(ishan_serve, ishan_ready, lambda r: any(w["healthy"] for w in r.json())),
    ):
        for measure in ways.values():  # warm-up: page in the weights, fill caches
            measure(PROMPT.format(n=-1))
        for round_ in range(args.rounds):
            for name, measure in ways.items():
                samples[name].append(measure(PROMPT.format(n=round_)))
        together: dict[str, Stream] = {
            "(b) python -m llama_cpp.server": lambda client, prompt: sse_stream(
                client,
                f"http://127.0.0.1:{server_port}/v1/completions",
                {"model": "m", "prompt": prompt, "stream": True, **common},
                lambda e: e["choices"][0]["text"],
            ),
            "(c) ishan infer serve": lambda client, prompt: sse_stream(
                client,
                f"http://127.0.0.1:{ishan_port}/coordinator/infer",
                {"model": "m", "prompt": prompt, "raw": True, **common},
                lambda e: e["token"],
            ),
        }
        concurrent: dict[str, list[list[tuple[StreamTimer, bool]]]] = {k: [] for k in together}
        for round_ in range(args.concurrent_rounds):
            for name, stream in together.items():
                prompt = PROMPT.format(n=100 + round_)
                concurrent[name].append(concurrent_round(stream, args.clients, prompt))

    print(
        f"model {model.name}, {n} tokens, ctx {args.ctx}, batch {args.batch}, "
        f"{args.threads} threads, greedy; median of {args.rounds} rounds"
    )
    base_ttft = statistics.median(t.ttft_s or 0 for t in samples["(a) llama-cpp-python direct"])
    base_rate = statistics.median(
        t.tokens_per_s or 0 for t in samples["(a) llama-cpp-python direct"]
    )
    print(f"{'':31} {'tokens':>6} {'TTFT ms':>8} {'Δ TTFT ms':>10} {'tok/s':>7} {'vs (a)':>7}")
    for name, timers in samples.items():
        ttft = statistics.median(t.ttft_s or 0 for t in timers)
        rate = statistics.median(t.tokens_per_s or 0 for t in timers)
        tokens = statistics.median(t.tokens for t in timers)
        print(
            f"{name:31} {tokens:>6.0f} {ttft * 1000:>8.1f} {(ttft - base_ttft) * 1000:>+10.1f} "
            f"{rate:>7.1f} {rate / base_rate:>7.1%}"
        )
    print("target for (c): tok/s within 5% of (a), TTFT within 20 ms of (a)")
    report_concurrent(concurrent, n)


if __name__ == "__main__":
    main()
