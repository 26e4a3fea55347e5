"""Lazy package exports, so importing a system's package (as `ishan --help` does) stays cheap.

A system's `__init__` lists its public names once, in its `if TYPE_CHECKING:` block, each as
`from ishan_tools.SYSTEM.MODULE import Name as Name` (the explicit re-export type checkers
read). `lazy_exports` reads that block from the source and returns `__all__` and a module
`__getattr__` that imports a name's module on its first use.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any


def typing_imports(init_file: str | Path) -> dict[str, str]:
    """Each name that `init_file`'s top-level `if TYPE_CHECKING:` block imports, and the module
    it is imported from, in the order written."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    homes: dict[str, str] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
            continue
        for statement in node.body:
            if not isinstance(statement, ast.ImportFrom) or not statement.module:
                raise TypeError(f"{init_file}: only `from MODULE import ...` in TYPE_CHECKING")
            for alias in statement.names:
                if alias.asname not in (None, alias.name):
                    raise TypeError(f"{init_file}: {alias.name} is renamed to {alias.asname}")
                homes[alias.name] = statement.module
    return homes


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def lazy_exports(package: str, init_file: str) -> tuple[list[str], Callable[[str], Any]]:
    """`__all__` and a module `__getattr__` for `package`, whose `__init__` is `init_file`:
    every name its TYPE_CHECKING block imports, loaded from its module on first use."""
    homes = typing_imports(init_file)

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home), name)

    return sorted(homes), __getattr__
