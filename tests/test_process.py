"""`_process.die_with_parent`: the supervisors' children go when a supervisor is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

PARENT = """
import subprocess, sys, time
from ishan_tools._process import die_with_parent
kwargs = {"preexec_fn": die_with_parent} if sys.argv[1] == "bound" else {}
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], **kwargs)
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _orphan_after_killing_its_parent(mode: str, wait_s: float) -> tuple[int, bool]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + wait_s
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    return child, _alive(child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_dies_with_its_sigkilled_parent_only_when_bound() -> None:
    child, alive = _orphan_after_killing_its_parent("bound", 10.0)
    assert not alive
    child, alive = _orphan_after_killing_its_parent("free", 1.0)  # the control: it outlives
    try:
        assert alive
    finally:
        os.kill(child, signal.SIGKILL)
