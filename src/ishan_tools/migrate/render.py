"""Terminal output of `ishan migrate`: the progress bar, summaries and tables (rich)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ishan_tools._cli.output import console, print_json
from ishan_tools.migrate.api import RateChange, RollbackPlan
from ishan_tools.migrate.changelog import StatusRow
from ishan_tools.migrate.lock import describe, is_stale
from ishan_tools.migrate.report import RunSummary


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} docs/s", style="cyan")


@contextmanager
def progress_bar(*, enabled: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    """A progress callback drawing on stderr (documents/s, ETA), or None when disabled or
    when stderr is not a terminal."""
    stderr = console(stderr=True)
    if not enabled or not stderr.is_terminal:
        yield None
        return
    columns = (
        TextColumn("migrating"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task("migrating", total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def render_summary(summary: RunSummary, *, as_json: bool, quiet: bool) -> None:
    if as_json:
        print_json(summary.as_dict())
        return
    out = console()
    style = {"applied": "green", "dry run": "cyan", "failed": "red"}.get(summary.status, "yellow")
    resumed = f", resumed (restored {summary.restored} documents first)" if summary.resumed else ""
    if summary.restored and not summary.resumed:
        resumed = f", restored {summary.restored} documents of partitions taken over"
    workers = f" with {summary.workers} workers" if summary.workers > 1 else ""
    joined = " (joined: this process's share)" if summary.joined else ""
    out.print(
        f"[bold]{summary.migration}[/bold] run {summary.run_id}: [{style}]{summary.status}"
        f"[/{style}]{resumed} - {summary.processed:,} documents{workers} in "
        f"{summary.elapsed_s:.1f}s ({summary.docs_per_s:,.0f} docs/s){joined}"
        + ("" if summary.backup or summary.dry_run else " [yellow]without backups[/yellow]")
    )
    if not quiet or summary.dry_run:
        table = Table("collection", "operation", "queued", *([] if summary.dry_run else ["result"]))
        for collection, per in sorted(summary.operations.counts.items()):
            results = summary.results.counts.get(collection, {})
            result = ", ".join(f"{n} {k}" for k, n in sorted(results.items()))
            for index, (operation, count) in enumerate(sorted(per.items())):
                row = [collection if index == 0 else "", operation, f"{count:,}"]
                table.add_row(*row, *([] if summary.dry_run else [result if index == 0 else ""]))
        if summary.operations.counts:
            out.print(table)
    if summary.dry_run:
        out.print("[cyan]dry run: nothing was written[/cyan]; first writes it would make:")
        for sample in summary.samples:
            out.print(f"  {json.dumps(sample, default=str)}")
    if summary.error_count:
        out.print(f"[red]{summary.error_count} document(s) failed:[/red]")
        for error in summary.errors:
            out.print(f"  _id {error.doc_id!r}: {error.error}")
    if summary.stop_reason and summary.status != "failed":
        out.print(f"[yellow]{summary.stop_reason}[/yellow]")
    if summary.log_path is not None or not summary.logs:
        out.print(f"[dim]log: {summary.log_path}[/dim]")
    else:
        out.print(f"[dim]logs: {', '.join(summary.logs)}[/dim]")


def render_status(
    rows: list[StatusRow],
    holder: dict[str, Any] | None,
    run: dict[str, Any] | None,
    *,
    as_json: bool,
) -> None:
    if as_json:
        print_json({"migrations": [row.as_dict() for row in rows], "lock": holder, "run": run})
        return
    out = console()
    if not rows:
        out.print("no migrations yet (write one with `ishan migrate new NAME`)")
    else:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for header in ("migration", "status", "runs", "docs", "last run", "script"):
            table.add_column(header, no_wrap=header in ("migration", "status", "last run"))
        colours = {"applied": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}
        flags = {None: "-", False: "unchanged", True: "[yellow]CHANGED[/yellow]"}
        for row in rows:
            colour = colours.get(row.status, "white")
            flag = flags[row.script_changed]
            if row.script_changed and row.status == "applied":
                flag = "[yellow]CHANGED since applied[/yellow]"
            table.add_row(
                row.name,
                f"[{colour}]{row.status}[/{colour}]" + (" (no backup)" if row.no_backup else ""),
                str(row.runs),
                f"{row.processed:,}",
                row.last_run or "-",
                flag,
            )
        out.print(table)
    if holder is not None and is_stale(holder):
        out.print(f"[dim]stale lock (its process is gone) left by {describe(holder)}[/dim]")
    elif holder is not None:
        out.print(f"[yellow]locked by {describe(holder)}[/yellow]")
    if run is not None:
        _render_run(out, run)


def _render_run(out: Console, run: dict[str, Any]) -> None:
    """The participants of the run holding the lock, and its partitions."""
    stop = run.get("stop")
    asked = f" (asked to stop: {stop['reason']})" if stop else ""
    out.print(f"run {run['run_id']} of [bold]{run['migration']}[/bold] ({run['mode']}){asked}")
    out.print(f"rate limit: {rate_text(run.get('max_rate') or 0)}")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for header in ("participant", "role", "state", "partition", "docs", "errors"):
        table.add_column(
            header, no_wrap=True, justify="right" if header in ("docs", "errors") else "left"
        )
    colours = {"working": "cyan", "gone": "red", "left": "dim"}
    for member in run["participants"]:
        colour = colours.get(member["state"], "white")
        table.add_row(
            f"{member['host']}:{member['pid']}",
            str(member["role"]),
            f"[{colour}]{member['state']}[/{colour}]",
            member["partition"] or "-",
            "-" if member["role"] == "supervisor" else f"{member['processed']:,}",
            "-" if member["role"] == "supervisor" else f"{member['errors']:,}",
        )
    out.print(table)
    parts = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for header in ("partition", "_id range", "state", "worker", "done", "progress"):
        parts.add_column(header, no_wrap=True, justify="right" if header == "done" else "left")
    for part in run["partitions"]:
        end = "]" if part["hi_inclusive"] else ")"
        owner = f"{part['host']}:{part['pid']}" if part["state"] != "pending" else "-"
        count = max(part["count"], 1)
        share = min(part["done"] / count, 1.0)
        parts.add_row(
            part["partition"],
            f"[{part['lo']!r}, {part['hi']!r}{end}",
            part["state"],
            owner if part.get("host") else "-",
            f"{part['done']:,}/{part['count']:,}",
            f"{'#' * round(share * 20):<20} {share:4.0%}",
        )
    out.print(parts)


def render_rollback(plan: RollbackPlan, *, done: bool, as_json: bool) -> None:
    if as_json:
        print_json({"migration": plan.migration, "status": plan.status, "counts": plan.counts})
        return
    out = console(stderr=not done)
    verb = ("restored", "deleted") if done else ("restore", "delete")
    head = (
        "rolled back" if done else f"roll back {plan.migration} ({plan.status}, {plan.runs} runs):"
    )
    out.print(f"[bold]{plan.migration}[/bold] {head}" if done else head)
    if not plan.counts:
        out.print("  nothing to undo")
    for collection, tally in sorted(plan.counts.items()):
        out.print(
            f"  {collection}: {verb[0]} {tally['restored']:,} documents, "
            f"{verb[1]} {tally['deleted']:,} inserted ones"
        )


def rate_text(rate: float) -> str:
    return "none" if rate <= 0 else f"{rate:,g} docs/s"


def render_rate_change(change: RateChange, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "migration": change.migration,
                "run_id": change.run_id,
                "max_rate": change.after,
                "was": change.before,
            }
        )
        return
    console().print(
        f"[bold]{change.migration}[/bold] run {change.run_id}: rate limit "
        f"{rate_text(change.after)} (was {rate_text(change.before)})"
    )
