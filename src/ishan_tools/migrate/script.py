"""Loading a migration script: a plain Python file in the original library's callback shape.

A script defines `primary` (the collection iterated) and `migrate`. With `collections`,
`migrate(doc, *collections, write_log)` receives the named collections in that order; without
it, `migrate(doc, ctx)`. Optional: `filter`, `projection`, `batch_size`.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ishan_tools.errors import MigrationError, UsageError

RESERVED_PREFIX = "_ishan_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_MESSAGE = 300
"""Characters of an error message shown on the error line; a longer first line is cut."""


@dataclass(frozen=True)
class MigrationScript:
    """What a script declares, plus its name (the file's stem) and checksum."""

    name: str
    path: Path
    checksum: str
    primary: str
    collections: tuple[str, ...] | None
    migrate: Callable[..., Any]
    filter: Mapping[str, Any]
    projection: Mapping[str, Any] | None
    batch_size: int | None


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line, for an exception a script or the server raised: the
    message's first line (cut to `MAX_MESSAGE` characters, `...` marking the cut), or a note
    when its `__str__` itself raises."""
    try:
        text = str(exc)
    except Exception as broken:
        text = f"(its message could not be printed: {type(broken).__name__})"
    first = first_line(text)
    name = type(exc).__name__
    return f"{name}: {first}" if first else name


def first_line(text: str) -> str:
    """The first line of `text`, cut to `MAX_MESSAGE` characters; ` ...` marks a cut."""
    lines = text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    if len(first) > MAX_MESSAGE:
        return first[:MAX_MESSAGE] + " ..."
    return first + " ..." if len(lines) > 1 else first


def exit_message(exc: SystemExit, where: str | None = None) -> str:
    """What a script that calls `sys.exit()` or `exit()` is told: in migrate() (`where`
    None), or at its top level while the file `where` loads."""
    if where is None:
        return (
            f"migrate() called exit({exc.code!r}): a migration script must not end the "
            "process; return to skip a document, raise to fail it"
        )
    return (
        f"{where} called exit({exc.code!r}) while loading: a migration script defines "
        "primary and migrate(), it must not end the process"
    )


def checksum_of(path: Path) -> str:
    """The sha256 of the script's bytes: a changed script is flagged after it was applied."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_collection_name(name: Any, where: str) -> str:
    """A collection name a migration may use, or a clear error."""
    if not isinstance(name, str) or not name or "$" in name or "\0" in name:
        raise MigrationError(f"{where}: {name!r} is not a valid collection name")
    if name.startswith(RESERVED_PREFIX) or name.startswith("system."):
        raise MigrationError(f"{where}: {name!r} is reserved for ishan's or MongoDB's own use")
    return name


def load_script(path: Path) -> MigrationScript:
    """Execute the script file and validate what it defines."""
    if not path.is_file():
        raise UsageError(f"migration script not found: {path}")
    if path.suffix != ".py":
        raise UsageError(f"a migration script is a .py file: {path}")
    if not _NAME.match(path.stem):
        raise UsageError(f"{path.name}: use letters, digits, '_', '-' or '.' in script names")
    source = path.read_bytes()
    module = types.ModuleType(f"ishan_migration_{path.stem}")
    module.__file__ = str(path)
    try:
        code = compile(source, str(path), "exec")
        exec(code, module.__dict__)
    except SyntaxError as exc:
        raise MigrationError(f"{path.name} line {exc.lineno}: syntax error: {exc.msg}") from exc
    except SystemExit as exc:
        raise MigrationError(exit_message(exc, path.name)) from None
    except Exception as exc:
        raise MigrationError(f"{path.name} failed to load: {one_line(exc)}") from exc
    return _validate(path, module, hashlib.sha256(source).hexdigest())


def _validate(path: Path, module: types.ModuleType, checksum: str) -> MigrationScript:
    where = path.name
    primary = getattr(module, "primary", None)
    if primary is None:
        raise MigrationError(f'{where}: define primary = "<collection to iterate>"')
    check_collection_name(primary, f"{where}: primary")
    collections = getattr(module, "collections", None)
    if collections is not None:
        if isinstance(collections, str) or not isinstance(collections, list | tuple):
            raise MigrationError(f'{where}: collections must be a list, like ["users", "orders"]')
        collections = tuple(check_collection_name(c, f"{where}: collections") for c in collections)
    migrate = getattr(module, "migrate", None)
    if not callable(migrate):
        raise MigrationError(f"{where}: define a function migrate(doc, ...) to call per document")
    expected = 2 if collections is None else len(collections) + 2
    _check_arity(where, migrate, expected, collections)
    filter_doc = getattr(module, "filter", None)
    if filter_doc is None:
        filter_doc = {}
    if not isinstance(filter_doc, Mapping):
        raise MigrationError(f"{where}: filter must be a dict (a MongoDB query)")
    projection = getattr(module, "projection", None)
    if projection is not None and not isinstance(projection, Mapping | list):
        raise MigrationError(f"{where}: projection must be a dict or a list of field names")
    batch_size = getattr(module, "batch_size", None)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise MigrationError(f"{where}: batch_size must be a positive integer")
    return MigrationScript(
        name=path.stem,
        path=path,
        checksum=checksum,
        primary=primary,
        collections=collections,
        migrate=migrate,
        filter=dict(filter_doc),
        projection=dict.fromkeys(projection, 1) if isinstance(projection, list) else projection,
        batch_size=batch_size,
    )


def _check_arity(
    where: str, migrate: Callable[..., Any], expected: int, collections: tuple[str, ...] | None
) -> None:
    try:
        signature = inspect.signature(migrate)
        signature.bind(*range(expected))
    except ValueError:
        return  # a builtin or C function: nothing to check
    except TypeError:
        shape = (
            "migrate(doc, ctx)"
            if collections is None
            else f"migrate(doc, {', '.join(collections)}, write_log)"
        )
        raise MigrationError(
            f"{where}: migrate{signature} does not take {expected} arguments; "
            f"the script's settings call it as {shape}"
        ) from None


TEMPLATE = '''"""Migration {name}: describe what it changes and why."""

# The collection iterated: migrate() is called once per document, in _id order.
primary = "users"

# Collections handed to migrate() after the document, in this order, then write_log.
# Delete this line to get the context form instead: def migrate(doc, ctx), where
# ctx["orders"] is a collection, ctx.log(action, content) logs, ctx.dry_run, ctx.run_id.
collections = ["users", "orders"]

# Optional settings.
filter = {{}}              # only documents matching this query
# projection = ["first", "last"]   # fields read from the primary collection
# batch_size = 1000        # documents per bulk write (--batch-size overrides)


def migrate(doc, users, orders, write_log):
    """Writes are buffered and sent as one bulk_write per batch; reads see earlier writes."""
    users.update_one(
        {{"_id": doc["_id"]}},
        {{"$set": {{"full_name": f"{{doc.get('first', '')}} {{doc.get('last', '')}}".strip()}}}},
    )
    write_log("update", f"Migrating document {{doc['_id']}}")
'''


def write_template(name: str, directory: Path) -> Path:
    """Write a commented template script `<directory>/<name>.py`; never overwrite."""
    stem = name.removesuffix(".py")
    if not _NAME.match(stem):
        raise UsageError(f"{name!r}: use letters, digits, '_', '-' or '.' in migration names")
    if not directory.is_dir():
        raise UsageError(f"directory not found: {directory}")
    target = directory / f"{stem}.py"
    if target.exists():
        raise MigrationError(f"{target} already exists; pick another name")
    target.write_text(TEMPLATE.format(name=stem), encoding="utf-8")
    return target
