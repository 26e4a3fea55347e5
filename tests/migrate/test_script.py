"""Loading scripts and writing templates: what a user sees for good and bad scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from ishan_tools.errors import MigrationError, UsageError
from ishan_tools.migrate.script import load_script, write_template

from .helpers import FIXTURES, ishan


def test_original_callback_shape_keeps_collections_in_order_written() -> None:
    script = load_script(FIXTURES / "add_full_name.py")
    assert script.name == "add_full_name"
    assert script.primary == "users"
    assert script.collections == ("users", "orders")
    assert script.filter == {}
    assert len(script.checksum) == 64


def test_context_form_reads_optional_settings() -> None:
    script = load_script(FIXTURES / "tag_with_context.py")
    assert script.collections is None
    assert script.filter == {"active": True}
    assert script.projection == {"first": 1}


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("syntax_error.py", "syntax_error.py line 3: syntax error"),
        ("no_migrate.py", "define a function migrate(doc, ...)"),
        ("wrong_arity.py", "migrate(doc, users, orders, write_log)"),
    ],
)
def test_bad_scripts_are_refused_with_one_clear_line(fixture: str, message: str) -> None:
    with pytest.raises(MigrationError) as caught:
        load_script(FIXTURES / fixture)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_reserved_and_missing_settings(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text('primary = "_ishan_migrations"\ndef migrate(doc, ctx): pass\n')
    with pytest.raises(MigrationError, match="reserved"):
        load_script(script)
    script.write_text("def migrate(doc, ctx): pass\n")
    with pytest.raises(MigrationError, match="define primary"):
        load_script(script)
    with pytest.raises(UsageError, match="not found"):
        load_script(tmp_path / "missing.py")


def test_new_writes_a_template_that_loads_and_never_overwrites(tmp_path: Path) -> None:
    result = ishan("migrate", "new", "add_names", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    path = tmp_path / "add_names.py"
    assert f"wrote {path}" in result.output
    script = load_script(path)
    assert script.collections == ("users", "orders")
    again = ishan("migrate", "new", "add_names", "--dir", tmp_path)
    assert again.exit_code == 1
    assert "already exists" in again.output
    with pytest.raises(UsageError):
        write_template("bad name!", tmp_path)
