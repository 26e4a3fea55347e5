"""The docs tell the truth: the CLI reference covers every command and option, every command
has help, the generated pages are current, the README's links lead somewhere, and the
examples outside crawl, migrate and infer run as written (those run against real servers in
tests/crawl, tests/migrate and tests/infer).
"""

from __future__ import annotations

import html
import re
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer

from ishan_tools.cli import app

from .docs_examples import DOCS, ROOT, Example, examples

CLI_PAGE = DOCS / "reference" / "cli.md"
ENV_PAGE = DOCS / "reference" / "env.md"
# Examples of these folders need a server; their own tests run them (see the module docstring).
SERVED = ("crawl", "migrate", "infer")


def all_commands() -> list[tuple[str, Any]]:
    """Every command and group, by its path (Typer's click objects, read by attribute)."""
    found: list[tuple[str, Any]] = []

    def walk(path: str, command: Any) -> None:
        found.append((path, command))
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(f"{path} {name}", sub)

    walk("ishan", typer.main.get_command(app))
    assert len(found) > 15
    return found


def reference_section(path: str) -> str:
    """The part of the CLI reference under the command's own heading."""
    text = CLI_PAGE.read_text("utf-8")
    heading = re.search(rf"^#+ `{re.escape(path)}`$", text, re.MULTILINE)
    assert heading, f"{path} has no section in docs/reference/cli.md"
    rest = text[heading.end() :]
    following = re.search(r"^#+ `ishan", rest, re.MULTILINE)
    return rest[: following.start()] if following else rest


@pytest.mark.parametrize("path", [path for path, _ in all_commands()])
def test_every_command_has_help_and_every_option_is_in_the_reference(path: str) -> None:
    command = dict(all_commands())[path]
    assert (command.help or "").strip(), f"{path} has no help"
    section = html.unescape(reference_section(path))
    assert command.help and command.help.strip().splitlines()[0] in section
    for param in command.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("-"):
                assert f"`{opt}`" in section, f"{path} {opt} is not in the CLI reference"
        if param.param_type_name == "option" and param.help:
            assert " ".join(param.help.split()) in section, f"{path} {param.opts[0]}: no help"


def test_every_environment_variable_is_in_the_reference() -> None:
    env = ENV_PAGE.read_text("utf-8")
    variables = {
        name
        for _, command in all_commands()
        for param in command.params
        for name in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    }
    assert len(variables) > 20
    missing = sorted(name for name in variables if f"| `{name}` |" not in env)
    assert not missing, f"docs/reference/env.md lacks {missing}"


def test_the_generated_references_are_current() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_stale_reference_fails_the_check_with_a_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = runpy.run_path(str(ROOT / "scripts" / "reference.py"))
    stale = tmp_path / "cli.md"
    stale.write_text(CLI_PAGE.read_text("utf-8").replace("| `--max-pages` |", "| `--pages` |"))
    generator["main"].__globals__["CLI_PAGE"] = stale
    generator["main"].__globals__["ROOT"] = tmp_path.parent
    assert generator["main"](["--check"]) == 1
    diff = capsys.readouterr().out
    assert "-| `--pages` |" in diff and "+| `--max-pages` |" in diff
    assert "python scripts/reference.py" in diff
    assert "--pages" in stale.read_text("utf-8")  # --check writes nothing


def test_an_envvar_list_is_one_variable_and_its_aliases() -> None:
    demo = typer.Typer()

    @demo.command()
    def serve(
        model: Annotated[
            str, typer.Option(envvar=["ISHAN_INFER_MODEL", "MODEL_PATH"], help="GGUF file.")
        ] = "m.gguf",
    ) -> None:
        """Serve a model."""

    @demo.command()
    def ask() -> None:
        """Ask it."""

    generator = runpy.run_path(str(ROOT / "scripts" / "reference.py"))
    generator["env_page"].__globals__["app"] = demo
    rows = [line for line in generator["env_page"]().splitlines() if "`--model`" in line]
    assert rows == [
        "| `ISHAN_INFER_MODEL` | `--model` | [`serve`](cli.md#ishan-serve) | GGUF file. |  |",
        "| `MODEL_PATH` | `--model` | [`serve`](cli.md#ishan-serve) | GGUF file. | "
        "`ISHAN_INFER_MODEL` |",
    ]
    assert "`--model`" in generator["cli_page"]()


def test_the_readme_is_short_and_its_links_lead_to_pages() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    assert len(readme.splitlines()) <= 200
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) > 20
    assert [link for link in links if not (ROOT / link).is_file()] == []


def test_only_examples_that_cannot_run_are_marked() -> None:
    marked = [example.id for example in examples() if example.not_run]
    assert marked == [], "say why in the docs, and update this list"


STANDALONE = [
    example
    for example in examples()
    if not example.not_run and example.page.relative_to(DOCS).parts[0] not in SERVED
]


@pytest.mark.parametrize("example", STANDALONE, ids=lambda example: example.id)
def test_example_runs_as_written(
    example: Example, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    printed = example.run()
    if example.output is not None:
        assert printed == example.output
