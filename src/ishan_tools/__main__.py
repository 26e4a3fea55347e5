"""`python -m ishan_tools` runs the `ishan` command."""

from __future__ import annotations

from ishan_tools.cli import app

if __name__ == "__main__":
    app(prog_name="ishan")
