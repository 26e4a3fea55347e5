"""A command whose optional extra is missing says which extra and how to install it, in one line.

Each command runs in a subprocess whose import system has the extra's modules blocked
(`sys.modules[name] = None`, as for a module that is not installed), so nothing is downloaded.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    (["crawl", "example.com"], ("httpx", "selectolax"), "ishan crawl", "crawl"),
    (["migrate", "status"], ("pymongo", "bson"), "ishan migrate", "migrate"),
    (["migrate", "script.py"], ("pymongo", "bson"), "ishan migrate", "migrate"),
    (["players", "--position", "CM", "--pace", "70"], ("numpy",), "ishan players", "players"),
    (["players", "serve", "--port", "0"], ("fastapi",), "ishan players serve", "players"),
    (["infer", "run", "hello"], ("llama_cpp",), "ishan infer run", "infer"),
    (["infer", "serve", "--port", "0"], ("llama_cpp",), "ishan infer serve", "infer"),
    (["infer", "worker", "--port", "0"], ("llama_cpp",), "ishan infer worker", "infer"),
    (["infer", "coordinator", "--port", "0"], ("fastapi",), "ishan infer coordinator", "infer"),
    (["infer", "ask", "hello"], ("httpx",), "ishan infer ask", "infer"),
]


def run_without(args: list[str], hidden: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in {hidden!r}:\n"
        "    sys.modules[name] = None\n"
        "from ishan_tools.cli import app\n"
        f"app({args!r}, prog_name='ishan')\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "hidden", "command", "extra"), CASES)
def test_missing_extra_is_one_line_naming_it(
    args: list[str], hidden: tuple[str, ...], command: str, extra: str
) -> None:
    result = run_without(args, hidden)
    assert result.returncode == 1, result.stderr
    assert result.stderr == f'error: {command} needs the {extra} extra: pip install ".[{extra}]"\n'


def test_help_works_without_any_extra() -> None:
    hidden = ("httpx", "pymongo", "bson", "numpy", "fastapi", "uvicorn", "llama_cpp")
    for system in ("crawl", "migrate", "players", "infer"):
        result = run_without([system, "--help"], hidden)
        assert result.returncode == 0 and "Usage: ishan" in result.stdout, result.stderr
