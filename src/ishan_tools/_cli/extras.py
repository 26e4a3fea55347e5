"""The one-line hint for a missing optional extra: `ishan crawl needs the crawl extra: ...`.

Each command names the extra it needs before it imports anything from it, so a user who
installed `.[players]` and runs `ishan crawl` reads how to install `.[crawl]`, not a traceback.
"""

from __future__ import annotations

import importlib.util
import sys

from ishan_tools.errors import IshanError

__all__ = ["EXTRAS", "MissingExtraError", "require_extra"]

# the top-level modules each extra brings, as pyproject.toml's optional dependencies name them
EXTRAS: dict[str, tuple[str, ...]] = {
    "crawl": ("httpx", "selectolax", "protego", "warcio", "redis", "prometheus_client"),
    "migrate": ("pymongo", "bson", "prometheus_client"),
    "players": ("numpy", "fastapi", "uvicorn"),
    "infer": ("llama_cpp", "fastapi", "uvicorn", "httpx", "prometheus_client"),
}


class MissingExtraError(IshanError):
    """A command ran without the optional dependencies of its extra."""


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None  # None: imports of it are blocked
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_extra(command: str, extra: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise `MissingExtraError` naming `extra` when one of its modules cannot be imported.

    `modules` narrows the check to what this command uses (for example `ishan infer ask`
    needs only httpx); by default every module of the extra is checked.
    """
    missing = [m for m in (modules or EXTRAS[extra]) if not _installed(m)]
    if missing:
        raise MissingExtraError(f'{command} needs the {extra} extra: pip install ".[{extra}]"')
