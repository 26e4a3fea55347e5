"""Terminal output of `ishan migrate`: the progress bar, summaries and tables (rich)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich import box
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
from ishan_tools.migrate.api import RollbackPlan
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
    out.print(
        f"[bold]{summary.migration}[/bold] run {summary.run_id}: [{style}]{summary.status}"
        f"[/{style}]{resumed} - {summary.processed:,} documents in {summary.elapsed_s:.1f}s "
        f"({summary.docs_per_s:,.0f} docs/s)"
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
    out.print(f"[dim]log: {summary.log_path}[/dim]")


def render_status(rows: list[StatusRow], holder: dict[str, Any] | None, *, as_json: bool) -> None:
    if as_json:
        print_json({"migrations": [row.as_dict() for row in rows], "lock": holder})
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
