"""The README's `ishan players` section documents every option the commands accept."""

from __future__ import annotations

from pathlib import Path

import typer

from ishan_tools.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_players_option_is_documented() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## ishan players") : text.index("## Environment variables")]
    root = typer.main.get_command(app)
    players = root.commands["players"]  # type: ignore[attr-defined]
    commands = [players, *players.commands.values()]
    options = {
        opt
        for command in commands
        for param in command.params
        for opt in param.opts
        if opt.startswith("--") and opt != "--help"
    }
    assert len(options) > 25
    missing = sorted(opt for opt in options if f"`{opt}`" not in section)
    assert not missing, f"README's players section lacks {missing}"
    for name in players.commands:
        assert f"`ishan players {name}" in section
