"""What the infer benchmark measures: `ishan infer serve`, and its worker asked straight."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from ishan_tools.infer.timing import StreamTimer

from .baselines import Ready
from .clients import Lines, Server, Timed, sse_stream

READY: Ready = (
    "/coordinator/health/workers",
    lambda r: any(w["healthy"] for w in r.json()),
)


def command(model: Path, args: argparse.Namespace, port: int) -> list[str]:
    """`ishan infer serve` with one worker and `--clients` slots."""
    threads = str(args.threads)
    return [
        sys.executable, "-m", "ishan_tools", "infer", "serve", "--model", str(model),
        "--ctx", str(args.ctx), "--batch", str(args.batch), "--workers", "1",
        "--threads", threads, "--port", str(port), "--worker-port", "0",
        "--heartbeat-interval", "1", "--slots", str(args.clients),
    ]  # fmt: skip


def coordinator(name: str, port: int, lines: Lines, common: dict[str, Any]) -> Server:
    """The service, through its coordinator's API (the prompt read verbatim: `raw`)."""
    url = f"http://127.0.0.1:{port}/coordinator/infer"

    def stream(prompt: str, ignore_eos: bool) -> Timed:
        body = {"model": "m", "prompt": prompt, "raw": True, "ignore_eos": ignore_eos}
        return sse_stream(lines, url, {**body, **common}, lambda e: e["token"])

    return Server(name, stream)


def worker_only(port: int, lines: Lines, common: dict[str, Any]) -> Server:
    """The same service's worker, asked straight (no coordinator): what the hop costs.
    Its prompts get a prefix of their own, so that they miss the worker's prefix cache
    that the `ishan` row has just filled."""
    where: list[str] = []

    def stream(prompt: str, ignore_eos: bool) -> Timed:
        if not where:
            health = f"http://127.0.0.1:{port}/coordinator/health/workers"
            where.append(httpx.get(health).json()[0]["url"] + "/worker/generate")
        body = {"model": "m", "prompt": f"Alone. {prompt}", "raw": True, **common}
        timer, ended = StreamTimer(), False
        for line in lines(where[0], {**body, "ignore_eos": ignore_eos}):
            event = json.loads(line) if line else {}
            ended = ended or bool(event.get("done"))
            if event.get("token"):
                timer.token()
        return timer, ended

    return Server("ishan worker only", stream)
