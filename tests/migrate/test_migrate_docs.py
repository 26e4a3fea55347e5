"""The README documents every option of every `ishan migrate` command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .helpers import ishan

README = Path(__file__).resolve().parents[2] / "README.md"


def migrate_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## ishan migrate")
    return text[start : text.index("\n## ", start + 1)]


@pytest.mark.parametrize("command", ["run", "new", "status", "rollback", "unlock"])
def test_every_option_is_in_the_readme(command: str) -> None:
    help_text = ishan("migrate", command, "--help").stdout
    options = set(re.findall(r"(--[a-z][a-z-]+)", help_text)) - {"--help"}
    assert options, help_text
    section = migrate_section()
    missing = sorted(option for option in options if f"`{option}" not in section)
    assert not missing, f"ishan migrate {command}: {missing} not documented in README.md"
