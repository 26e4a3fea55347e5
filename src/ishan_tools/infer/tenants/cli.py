"""`ishan infer tenants`: add, list and remove the tenants of a tenants file.

`add` creates the file when it is missing, makes a key, stores only its SHA-256 hash and
prints the key once, alone on stdout (`KEY=$(ishan infer tenants add team-a --file t.toml)`);
everything else goes to stderr. Running coordinators read the change on SIGHUP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ishan_tools.infer.tenants.book import (
    Tenant,
    TenantsError,
    check_name,
    dump,
    hash_key,
    load,
    new_key,
    parse,
    save,
)

app = typer.Typer(
    help="Tenants of a shared service: keys (stored as hashes), quotas, weights, models.",
    no_args_is_help=True,
)

FileOpt = Annotated[
    Path,
    typer.Option(
        "--file",
        envvar="ISHAN_INFER_TENANTS",
        help="The tenants file (TOML) the coordinator reads with --tenants.",
    ),
]
RELOAD_HINT = "running coordinators read it on SIGHUP (kill -HUP PID)"


def _note(line: str) -> None:
    typer.echo(line, err=True)


def _existing(path: Path) -> list[Tenant]:
    return load(path) if path.exists() else []


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="The tenant's name (shown in metrics and usage).")],
    file: FileOpt,
    max_sessions: Annotated[
        int | None, typer.Option("--max-sessions", min=1, help="Concurrent sessions at most.")
    ] = None,
    tokens_per_minute: Annotated[
        int | None,
        typer.Option(
            "--tokens-per-minute", min=1, help="Prompt plus completion tokens per 60 s at most."
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option("--max-tokens", min=1, help="The most `max_tokens` one request may ask."),
    ] = None,
    weight: Annotated[
        float,
        typer.Option(
            "--weight", min=0.01, max=10_000, help="Its share of the slots under contention."
        ),
    ] = 1.0,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Comma-separated models it may use [default: all]."),
    ] = None,
    cache_group: Annotated[
        str | None,
        typer.Option(
            "--cache-group",
            help="Share prefix cache with the tenants of this group [default: none].",
        ),
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May read every tenant's usage.")] = False,
) -> None:
    """Add a tenant with a new key: the key is printed once, alone on stdout."""
    tenants = _existing(file)
    if any(t.name == check_name(name) for t in tenants):
        raise TenantsError(f"tenant {name!r} is in {file} already: remove it first")
    key = new_key()
    allowed = None
    if models is not None:
        allowed = tuple(m.strip() for m in models.split(",") if m.strip())
        if not allowed:
            raise TenantsError("--models lists no model: name at least one, or leave it out")
    tenant = Tenant(
        name=name,
        keys=(hash_key(key),),
        max_sessions=max_sessions,
        tokens_per_minute=tokens_per_minute,
        max_tokens=max_tokens,
        weight=weight,
        models=allowed,
        cache_group=cache_group,
        admin=admin,
    )
    updated = [*tenants, tenant]
    parse(dump(updated), str(file))  # the same checks the coordinator makes
    save(file, updated)
    _note(f"added tenant {name!r} to {file}; its key, shown only now, is on stdout")
    _note(RELOAD_HINT)
    typer.echo(key)


def _limit(value: object) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


@app.command("list")
def list_(file: FileOpt) -> None:
    """List the tenants and their limits (never their keys)."""
    tenants = load(file)
    header = ("NAME", "KEYS", "SESSIONS", "TOKENS/MIN", "MAX_TOKENS", "WEIGHT", "MODELS", "CACHE")
    rows = [header]
    for t in tenants:
        rows.append(
            (
                t.name + (" (admin)" if t.admin else ""),
                str(len(t.keys)),
                _limit(t.max_sessions),
                _limit(t.tokens_per_minute),
                _limit(t.max_tokens),
                _limit(t.weight),
                ",".join(t.models) if t.models is not None else "all",
                t.cache_group or "own",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@app.command()
def remove(
    name: Annotated[str, typer.Argument(help="The tenant to remove, with all its keys.")],
    file: FileOpt,
) -> None:
    """Remove a tenant: its keys stop working once coordinators reload the file."""
    tenants = load(file)
    kept = [t for t in tenants if t.name != name]
    if len(kept) == len(tenants):
        known = ", ".join(t.name for t in tenants) or "none"
        raise TenantsError(f"no tenant {name!r} in {file} (tenants: {known})")
    save(file, kept)
    _note(f"removed tenant {name!r} from {file}; {RELOAD_HINT}")
