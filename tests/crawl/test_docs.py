"""The README documents every option and environment variable of `ishan crawl`."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from ishan_tools.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def _crawl_section() -> str:
    text = README.read_text("utf-8")
    start = text.index("## ishan crawl")
    return text[start : text.index("\n## ", start + 1)]


COMMANDS = ("run", "status", "forget", "merge")


def _crawl_params(command: str = "run") -> list[typer.core.click.Parameter]:
    group = typer.main.get_command(app)
    crawl = group.commands["crawl"].commands[command]  # type: ignore[attr-defined]
    return [p for p in crawl.params if p.name != "help"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_in_the_options_table(command: str) -> None:
    section = _crawl_section()
    if command != "run":
        assert f"`ishan crawl {command}" in section, f"ishan crawl {command} is not documented"
    for param in _crawl_params(command):
        for opt in param.opts:
            if opt.startswith("-"):
                assert f"`{opt}`" in section, f"{opt} is not documented in README.md"


def test_every_environment_variable_is_in_the_readme() -> None:
    text = README.read_text("utf-8")
    envvars = [p.envvar for p in _crawl_params() if p.envvar]
    assert envvars
    for name in envvars:
        assert f"| `{name}` | `ishan crawl` |" in text, name
