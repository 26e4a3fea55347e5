"""The root `ishan` command: help, version, error mapping and lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from ishan_tools import __version__
from ishan_tools.cli import _RootGroup, app
from ishan_tools.errors import IshanError, UsageError

runner = CliRunner()
HEAVY = ("pandas", "sklearn", "pymongo", "llama_cpp", "fastapi", "numpy", "httpx", "uvicorn")


def test_help_lists_the_toolkit() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Usage: ishan" in result.output
    assert "--version" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"ishan {__version__}"


def test_unknown_command_is_a_usage_error() -> None:
    result = runner.invoke(app, ["no-such-command"])
    assert result.exit_code == 2


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ishan_tools.cli import app\n"
        "for args in (['--help'], *([name, '--help'] for name in "
        "[c.name for c in app.registered_groups])):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_installed_command_and_module_entry_point() -> None:
    exe = Path(sys.executable).with_name("ishan")
    for cmd in ([str(exe), "--version"], [sys.executable, "-m", "ishan_tools", "--version"]):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"ishan {__version__}"


def _app_raising(exc: BaseException) -> typer.Typer:
    demo = typer.Typer(cls=_RootGroup)

    @demo.callback()
    def root(debug: bool = typer.Option(False, "--debug")) -> None:
        """Demo root."""

    @demo.command()
    def boom() -> None:
        raise exc

    return demo


def test_errors_become_one_red_line_and_exit_code() -> None:
    result = runner.invoke(_app_raising(IshanError("seed unreachable: start it")), ["boom"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: seed unreachable: start it"
    assert "Traceback" not in result.output

    result = runner.invoke(_app_raising(UsageError("--depth must be >= -1")), ["boom"])
    assert result.exit_code == 2

    result = runner.invoke(_app_raising(IshanError("custom", exit_code=7)), ["boom"])
    assert result.exit_code == 7


def test_ctrl_c_exits_130() -> None:
    result = runner.invoke(_app_raising(KeyboardInterrupt()), ["boom"])
    assert result.exit_code == 130
    assert "interrupted" in result.output


def test_debug_shows_the_exception() -> None:
    result = runner.invoke(_app_raising(IshanError("x")), ["--debug", "boom"])
    assert isinstance(result.exception, IshanError)
