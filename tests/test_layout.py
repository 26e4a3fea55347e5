"""The architecture page shows the real package tree: every package, every module.

Its `text` block lists, one package a line, `path/` and the package's modules (without `.py`,
`__init__` left out); the first line is the top-level modules. A module added or moved without
updating docs/internals/architecture.md fails here, with the line to write.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ishan_tools"


def real_tree() -> dict[str, list[str]]:
    tree: dict[str, list[str]] = {}
    for folder in sorted(p for p in [PACKAGE, *PACKAGE.rglob("*")] if p.is_dir()):
        if not (folder / "__init__.py").exists():
            continue
        modules = sorted(f.stem for f in folder.glob("*.py") if f.stem != "__init__")
        key = "" if folder == PACKAGE else f"{folder.relative_to(PACKAGE).as_posix()}/"
        tree[key] = modules
    return tree


def documented_tree() -> dict[str, list[str]]:
    section = (ROOT / "docs" / "internals" / "architecture.md").read_text("utf-8")
    block = section[
        section.index("```text\n") + 8 : section.index("\n```", section.index("```text"))
    ]
    tree: dict[str, list[str]] = {}
    for line in block.splitlines():
        path, *modules = line.split("#", 1)[0].split()
        key = "" if path == "src/ishan_tools/" else path
        tree[key] = sorted(modules)
    return tree


def test_the_architecture_page_shows_every_package_and_module() -> None:
    real, shown = real_tree(), documented_tree()
    wrong = {
        f"{key or 'src/ishan_tools/'}  {' '.join(modules)}": shown.get(key)
        for key, modules in real.items()
        if shown.get(key) != modules
    }
    assert not wrong, f"the architecture page's tree differs; write these lines: {list(wrong)}"
    assert set(shown) == set(real), (
        f"the architecture page lists packages that do not exist: {set(shown) - set(real)}"
    )
