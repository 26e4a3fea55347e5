"""The coordinator's cost per relayed token, without a model: CPU microseconds a token.

On a small machine the coordinator competes with llama.cpp's threads for the cores, so
what it spends per token comes off the decode rate (see docs/benchmarks/infer.md).
This measures that cost alone and steadily: a fake worker (in this process, registered by
heartbeat) streams `--tokens` token lines per request, one every `--gap-ms`, and clients
read them through

  ishan coordinator   `ishan infer coordinator`, to `/coordinator/infer` (SSE out);
  byte relay          the floor: a plain asyncio TCP relay (uvloop where installed) that
                      forwards the bytes and parses nothing.

Each relay's CPU time (user + system, from /proc) over a round, divided by the tokens the
clients received; medians over `--rounds`, with 1 and 4 concurrent clients.

    python -m bench.infer_relay [--rounds 3] [--tokens 4000] [--gap-ms 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.harness.processes import stop_process
from tests.harness.waiting import WaitTimeout, wait_until

RELAY = """
import asyncio, sys
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
    finally:
        writer.close()
async def handle(reader, writer):
    upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", {port})
    await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer),
                         return_exceptions=True)
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
try:
    import uvloop
    run = uvloop.run
except ImportError:
    run = asyncio.run
try:
    run(main())
except KeyboardInterrupt:
    pass
"""


def fake_worker(tokens: int, gap_s: float) -> tuple[int, Callable[[str], None]]:
    """Start the fake worker in a thread; its port, and a function that registers it with
    a coordinator (heartbeats every second from then on)."""
    ready: list[int] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: application/x-ndjson\r\n")
        writer.write(b"x-ishan-kv-bytes: 1000\r\n\r\n")
        for _ in range(tokens):
            writer.write(b'{"token": " tok"}\n')
            await asyncio.sleep(gap_s)
        done = {"done": True, "finish_reason": "length", "prompt_tokens": 1}
        writer.write(json.dumps({**done, "completion_tokens": tokens}).encode() + b"\n")
        writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        ready.append(server.sockets[0].getsockname()[1])
        started.set()
        await server.serve_forever()

    threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True).start()
    started.wait()
    port = ready[0]

    def register(coordinator: str) -> None:
        beat = {
            "worker_id": "fake", "url": f"http://127.0.0.1:{port}", "model": "m",
            "n_ctx": 1 << 20, "sessions": 0, "max_sessions": 64, "kv_used_bytes": 0,
            "kv_capacity_bytes": 10**12, "session_kv_bytes": 10**6,
            "heartbeat_interval": 1.0, "slots": 8, "boot_id": "fake",
        }  # fmt: skip

        async def beats() -> None:
            async with httpx.AsyncClient() as client:
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        await client.post(f"{coordinator}/coordinator/heartbeat", json=beat)
                    await asyncio.sleep(1.0)

        asyncio.run_coroutine_threadsafe(beats(), loop)

    return port, register


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stream(url: str, body: dict[str, object] | None) -> int:
    """One request; the token events that came back."""
    count = 0
    payload = body or {}
    with httpx.Client(timeout=120) as client, client.stream("POST", url, json=payload) as r:
        for line in r.iter_lines():
            event = line.removeprefix("data: ")
            if event and json.loads(event).get("token"):
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=4000, help="per request")
    parser.add_argument("--gap-ms", type=float, default=2.0, help="between two tokens")
    args = parser.parse_args()
    worker_port, register = fake_worker(args.tokens, args.gap_ms / 1000)

    coordinator = subprocess.Popen(
        [sys.executable, "-m", "ishan_tools", "infer", "coordinator", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    relay = subprocess.Popen(
        [sys.executable, "-c", RELAY.format(port=worker_port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert coordinator.stdout is not None and relay.stdout is not None
        line = ""
        while "listening on" not in line:  # "coordinator listening on http://..."
            line = coordinator.stdout.readline()
            if not line:
                raise SystemExit("the coordinator did not start")
        base = line.strip().rsplit(" ", 1)[-1]
        drain = threading.Thread(target=coordinator.stdout.read, daemon=True)
        drain.start()  # its later lines must never fill the pipe
        relay_url = f"http://127.0.0.1:{relay.stdout.readline().strip()}/worker/generate"
        register(base)
        health = f"{base}/coordinator/health/workers"
        try:
            wait_until(lambda: any(w["healthy"] for w in httpx.get(health).json()), 30)
        except WaitTimeout:
            raise SystemExit("the coordinator never saw the fake worker") from None
        body = {"model": "m", "prompt": "x", "raw": True, "max_tokens": args.tokens}
        relays = {
            "ishan coordinator": (coordinator.pid, f"{base}/coordinator/infer", body),
            "byte relay": (relay.pid, relay_url, None),
        }
        for _pid, url, payload in relays.values():  # warm-up
            stream(url, payload)
        figures: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for clients in (1, 4):
                for name, (pid, url, payload) in relays.items():
                    before = cpu_s(pid)
                    with ThreadPoolExecutor(clients) as pool:
                        received = sum(pool.map(stream, [url] * clients, [payload] * clients))
                    spent = cpu_s(pid) - before
                    if received < clients * args.tokens:
                        raise SystemExit(f"{name}: {received} of {clients * args.tokens} tokens")
                    figures.setdefault((name, clients), []).append(spent / received * 1e6)
        print(
            f"fake worker: {args.tokens} tokens a request, one every {args.gap_ms:g} ms; "
            f"CPU of the relay process per token received, median of {args.rounds} rounds"
        )
        print(f"{'relay':20} {'clients':>7} {'CPU us/token':>13} {'vs byte relay':>14}  rounds")
        for clients in (1, 4):
            floor = statistics.median(figures[("byte relay", clients)])
            for name in relays:
                values = figures[(name, clients)]
                median = statistics.median(values)
                each = " ".join(f"{v:.0f}" for v in values)
                print(f"{name:20} {clients:>7} {median:>13.1f} {median / floor:>13.2f}x  {each}")
    finally:
        for process in (coordinator, relay):
            stop_process(process, 20, sig=signal.SIGINT)


if __name__ == "__main__":
    main()
