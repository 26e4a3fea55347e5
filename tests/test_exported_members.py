"""Each system's public names: listed once, in its `__init__`'s TYPE_CHECKING block, and there
they agree with `__all__`, with what loads lazily and with what a type checker sees."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from ishan_tools._lazy import typing_imports

LAZY = ["ishan_tools.crawl", "ishan_tools.migrate", "ishan_tools.players", "ishan_tools.infer"]


def init_of(package: str) -> Path:
    module = importlib.import_module(package)
    assert module.__file__ is not None
    return Path(module.__file__)


@pytest.mark.parametrize("package", LAZY)
def test_typing_imports_all_and_lazy_exports_agree(package: str) -> None:
    module = importlib.import_module(package)
    homes = typing_imports(init_of(package))
    assert homes, f"{package} exports nothing"
    assert module.__all__ == sorted(homes)
    assert len(set(module.__all__)) == len(module.__all__)
    for name, home in homes.items():
        assert home.startswith(package + "."), (name, home)
        value = getattr(module, name)
        assert value is getattr(importlib.import_module(home), name), name
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = module.no_such_name


@pytest.mark.parametrize("package", LAZY)
def test_names_are_listed_once_and_re_exported_for_type_checkers(package: str) -> None:
    """One `from HOME import Name as Name` per name (what mypy --strict and pyright take for
    an export), and no other list of names in the `__init__`."""
    tree = ast.parse(init_of(package).read_text(encoding="utf-8"))
    names = typing_imports(init_of(package))
    literals = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    assert not set(names) & set(literals), "names listed again as strings"
    aliased = [
        alias
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module != "typing"
        for alias in node.names
        if alias.name in names
    ]
    assert sorted(alias.name for alias in aliased) == sorted(names)
    assert all(alias.asname == alias.name for alias in aliased)


@pytest.mark.parametrize("package", [*LAZY, "ishan_tools.breaker"])
def test_star_import_gives_every_name(package: str) -> None:
    code = (
        f"import {package} as pkg\n"
        "namespace = {}\n"
        f"exec('from {package} import *', namespace)\n"
        "missing = [n for n in pkg.__all__ if n not in namespace]\n"
        "print(missing)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_importing_a_system_package_loads_none_of_its_modules() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {package}\n" for package in LAZY)
        + "print(sorted(m for m in sys.modules if m.count('.') >= 2 and m.startswith("
        + f"tuple(p + '.' for p in {LAZY!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
