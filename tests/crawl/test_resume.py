"""Interrupt the installed `ishan crawl` for real (SIGINT, SIGKILL) and resume it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FixtureServer
from .helpers import manifest

ISHAN = str(Path(sys.executable).with_name("ishan"))


def _start(site: FixtureServer, out: Path, *extra: str) -> subprocess.Popen[str]:
    args = [ISHAN, "crawl", site.url("/dyn/"), "-o", str(out), "-c", "2", "--log-format", "json"]
    return subprocess.Popen(
        [*args, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_saves(process: subprocess.Popen[str], count: int) -> None:
    assert process.stdout is not None
    saves = 0
    for line in process.stdout:
        if json.loads(line)["event"] == "save":
            saves += 1
            if saves == count:
                return
    raise AssertionError("the crawl ended before it was interrupted")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_crawl_resumes_without_refetching_saved_pages(
    site: FixtureServer, tmp_path: Path, how: signal.Signals
) -> None:
    site.dyn_pages = 40
    site.dyn_delay = 0.05
    out = tmp_path / "out"
    process = _start(site, out)
    try:
        _wait_for_saves(process, 10)
        os.kill(process.pid, how)
        _, stderr = process.communicate(timeout=20)
    finally:
        _stop(process)
    if how is signal.SIGINT:
        assert process.returncode == 130
        assert "interrupted" in stderr
    else:
        assert process.returncode == -signal.SIGKILL
    saved_first = {url for url, r in manifest(out).items() if r["file"]}
    assert 5 <= len(saved_first) < 41  # a kill can land between a save and its manifest line

    again = subprocess.run(
        [ISHAN, "crawl", site.url("/dyn/"), "-o", str(out), "--resume", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    records = manifest(out)
    assert len(records) == 41
    assert all(r["status"] == 200 for r in records.values())
    for url in saved_first:
        path = url.split(str(site.server_address[1]), 1)[1]
        assert site.count(path) == 1, f"{path} was fetched again"


def test_sigint_summary_reports_interrupted(site: FixtureServer, tmp_path: Path) -> None:
    site.dyn_pages = 40
    site.dyn_delay = 0.05
    process = _start(site, tmp_path / "out")
    try:
        _wait_for_saves(process, 3)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=20)
    finally:
        _stop(process)
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["event"] == "summary"
    assert summary["stop_reason"] == "interrupted"
    assert summary["queued"] > 0


def test_closing_the_pipe_stops_the_crawl_quietly_and_it_can_resume(
    site: FixtureServer, tmp_path: Path
) -> None:
    site.dyn_pages = 40
    site.dyn_delay = 0.1
    out = tmp_path / "out"
    process = _start(site, out, "-c", "1")
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        process.stdout.close()  # like `| head -1`
        _, stderr = process.communicate(timeout=30)
    finally:
        _stop(process)
    assert json.loads(first)["event"] in {"robots_err", "seed"}
    assert process.returncode == 0
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert len(manifest(out)) < 41
    again = subprocess.run(
        [ISHAN, "crawl", site.url("/dyn/"), "-o", str(out), "--resume", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0
    assert len(manifest(out)) == 41
