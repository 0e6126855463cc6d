"""``durableflow logs ID [--task T] [--follow]``: what the tasks of a workflow printed and logged.

Reads through the Reader (``Reader.get_logs``): the logs captured per task attempt where it ran
(thread, pool process or Ray worker). ``--follow`` polls every second and prints what is new
until the workflow is no longer RUNNING or PENDING and every log it printed has ended.
"""

from __future__ import annotations

import time
from typing import Any

import click

from durableflow.cli._common import CliState, echo_json, fmt_time, pass_state
from durableflow.model.status import ACTIVE

__all__ = ["logs"]

FOLLOW_POLL = 1.0
"""Seconds between two reads of ``--follow``."""


def _title(entry: Any) -> str:
    where = f" on {entry.host} pid {entry.pid}" if entry.host else ""
    ended = "running" if entry.end is None else f"ended {fmt_time(entry.end)}"
    return (
        f"=== task {entry.task_id} attempt {entry.attempt} "
        f"(started {fmt_time(entry.start)}, {ended}{where}) ==="
    )


def _entry_json(entry: Any) -> dict[str, Any]:
    return {
        "task_id": entry.task_id,
        "attempt": entry.attempt,
        "start": entry.start,
        "end": entry.end,
        "written": entry.written,
        "dropped": entry.dropped,
        "host": entry.host,
        "pid": entry.pid,
        "text": entry.text,
    }


def _ordered(found: dict[str, list[Any]]) -> list[Any]:
    """Every attempt's log, in the order the attempts started."""
    entries = [entry for attempts in found.values() for entry in attempts]
    entries.sort(key=lambda e: (e.start, e.task_id, e.attempt))
    return entries


def _print_text(text: str) -> None:
    click.echo(text, nl=not text.endswith("\n") and bool(text))


@click.command()
@click.argument("workflow_id")
@click.option("--task", "task_id", metavar="TASK_ID", help="Only this task's attempts.")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing new output until the workflow is no longer RUNNING or PENDING.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (not with --follow).")
@pass_state
def logs(
    state: CliState, workflow_id: str, task_id: str | None, follow: bool, as_json: bool
) -> None:
    """Print what the tasks of a workflow printed and logged, attempt by attempt.

    Each task attempt's stdout, stderr and logging records are captured where it ran and kept
    with the workflow (the last 1 MiB of each attempt; a cut is marked). Attempts that wrote
    nothing have no log.
    """
    reader: Any = state.reader()  # Reader.get_logs (durableflow.runtime.logs.get_logs)
    if as_json and follow:
        raise click.UsageError("--json and --follow do not go together")
    if follow:
        _follow(reader, workflow_id, task_id)
        return
    found = reader.get_logs(workflow_id, task_id)
    if as_json:
        echo_json(
            {
                "workflow_id": workflow_id,
                "tasks": {tid: [_entry_json(e) for e in entries] for tid, entries in found.items()},
            }
        )
        return
    entries = _ordered(found)
    if not entries:
        what = f"task {task_id!r}" if task_id else f"workflow {workflow_id!r}"
        click.echo(f"no logs for {what}: no attempt printed or logged anything", err=True)
    for entry in entries:
        click.echo(_title(entry))
        _print_text(entry.text)


def _follow(reader: Any, workflow_id: str, task_id: str | None) -> None:
    """Print each attempt's new text as it arrives, a title line when the attempt changes.

    The status is read before the logs: once it reads finished, the logs read next hold
    every attempt's last blob (an attempt puts its log before its outcome is recorded).
    """
    seen: dict[tuple[str, int], int] = {}
    current: tuple[str, int] | None = None
    while True:
        status = reader.get_status(workflow_id)
        for entry in _ordered(reader.get_logs(workflow_id, task_id)):
            key = (entry.task_id, entry.attempt)
            new = entry.written - seen.get(key, 0)
            if new <= 0:
                continue
            if current != key:
                click.echo(_title(entry))
                current = key
            _print_text(entry.text[-new:] if new < len(entry.text) else entry.text)
            seen[key] = entry.written
        if status not in ACTIVE:
            click.echo(f"--- workflow {workflow_id} is {status.value}", err=True)
            return
        time.sleep(FOLLOW_POLL)
