"""An `ishan` run started with `--metrics-port 0`: the URL it announces, its scraped samples."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ISHAN = str(Path(sys.executable).with_name("ishan"))
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Served:
    """`ishan ARGS --metrics-port 0 --metrics-linger LINGER` (or `ARGS` alone, `serve=False`:
    they name the port), its stdout and stderr kept."""

    def __init__(
        self, *args: str, linger: float = 60, serve: bool = True, env: dict[str, str] | None = None
    ) -> None:
        command = [ISHAN, *args]
        if serve:
            command += ["--metrics-port", "0", "--metrics-linger", str(linger)]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.url = ""
        self._announced = threading.Event()
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=self._keep, args=(self.process.stdout, self.stdout)).start()
        threading.Thread(target=self._keep, args=(self.process.stderr, self.stderr)).start()
        if not self._announced.wait(60) or not self.url:
            self.stop()
            raise AssertionError("no 'metrics at URL' line:\n" + "".join(self.stderr))

    def _keep(self, stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)
            if line.startswith("metrics at ") and not self.url:
                self.url = line.split()[2]
                self._announced.set()
        self._announced.set()

    def wait_for_output(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.stdout):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the output:\n{''.join(self.stderr)}")
            time.sleep(0.05)

    def wait_for_json(self, timeout: float = 120) -> Any:
        """The JSON document the run printed on stdout (its summary), once complete."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return json.loads("".join(self.stdout))
            except ValueError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"no JSON summary:\n{''.join(self.stderr)}") from None
                time.sleep(0.05)

    def samples(self) -> Samples:
        response = httpx.get(self.url, timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Ctrl-C (it stops lingering at once), or `sig`; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))
