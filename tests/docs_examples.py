"""The ```python examples of the docs pages, collected so that tests can run them.

A block runs as written. A block whose fence has a title (```` ```python title="x.py" ````) is
a file the page asks the reader to create (a migration script), not a program. A block is
left out only when an HTML comment right before it says why: `<!-- not run: why -->`.
The ```console block that follows an example, if any, is its documented output (after its
first line when that is the command that ran it, `$ python NAME.py`).
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_FENCE = re.compile(r'^```python(?:\s+title="(?P<title>[^"]+)")?\s*$')
_RAN_AS = re.compile(r"^\$ python \S+\.py\n")
_NOT_RUN = re.compile(r"^<!-- not run: (?P<why>.+) -->$")


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    code: str
    title: str | None
    not_run: str | None
    output: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(DOCS).as_posix()}:{self.line}"

    def run(self, replace: dict[str, str] | None = None) -> str:
        """Execute the block as a program and return what it printed."""
        code = self.code
        for old, new in (replace or {}).items():
            code = code.replace(old, new)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, self.id, "exec"), {"__name__": "__main__"})
        return printed.getvalue()


def _block(lines: list[str], start: int) -> tuple[str, int]:
    """The text of the fenced block opening at `start`, and the index after its closing fence."""
    end = start + 1
    while not lines[end].startswith("```"):
        end += 1
    return "\n".join(lines[start + 1 : end]) + "\n", end + 1


def page_examples(page: Path) -> list[Example]:
    lines = page.read_text("utf-8").splitlines()
    found: list[Example] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        code, after = _block(lines, index)
        before = next((line for line in reversed(lines[:index]) if line.strip()), "")
        not_run = _NOT_RUN.match(before)
        following = after
        while following < len(lines) and not lines[following].strip():
            following += 1
        output = None
        if following < len(lines) and lines[following] == "```console":
            output, _ = _block(lines, following)
            if _RAN_AS.match(output):
                output = output.split("\n", 1)[1]
        found.append(
            Example(
                page,
                index + 1,
                code,
                fence["title"],
                not_run["why"] if not_run else None,
                output,
            )
        )
        index = after
    return found


def examples(folder: str | None = None) -> list[Example]:
    """Every example of the docs, or of one folder of them (`"crawl"`)."""
    pages = sorted((DOCS / folder if folder else DOCS).rglob("*.md"))
    return [example for page in pages for example in page_examples(page)]
