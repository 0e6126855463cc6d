"""Steering commands (through the Client): restart, fork, resume-all, cancel-all.

The bulk commands (``resume-all``, ``cancel-all``, and ``prune`` in
:mod:`durableflow.cli.retention`) share one filter: ``--status``
(repeatable), ``--prefix``, ``--name`` (the root task's), ``--older-than 30d``; ``--dry-run``
prints the count and the first ids and changes nothing. ``cancel-all`` and ``prune`` delete or
stop runs, so they ask first: on a terminal with ``click.confirm``; with no terminal they refuse
unless ``--yes`` is given (a script never deletes by accident). ``resume-all`` only continues
runs and asks nothing. One failure never stops the rest: each command prints what failed and
why, and exits 1 if anything failed.
"""

from __future__ import annotations

import concurrent.futures
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from durableflow.cli._common import (
    CliState,
    Table,
    big_set_progress,
    echo_json,
    fail,
    one_line,
    pass_state,
    progress,
    spinner,
)
from durableflow.cli.workflows import print_value
from durableflow.errors import WorkflowError
from durableflow.model.filters import parse_age
from durableflow.model.status import WorkflowStatus

__all__ = [
    "cancel_all",
    "confirm",
    "filter_options",
    "filters_of",
    "fork",
    "json_option",
    "print_ids",
    "restart",
    "resume_all",
]

F = TypeVar("F", bound=Callable[..., Any])

SHOWN = 20
"""How many ids a dry run (or a failure summary) prints."""

_STATUS = click.Choice([s.value for s in WorkflowStatus], case_sensitive=False)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _check_age(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: ``--older-than`` must be a duration (``0s``, ``12h``, ``30d``)."""
    if value is not None:
        try:
            parse_age(value)
        except ValueError as err:
            raise click.BadParameter(str(err)) from None
    return value


def filter_options(func: F) -> F:
    """``--status`` (repeatable), ``--prefix``, ``--name``, ``--older-than``, ``--dry-run``."""
    options = [
        click.option(
            "--status",
            "statuses",
            type=_STATUS,
            multiple=True,
            help="Only this status (repeatable).",
        ),
        click.option("--prefix", metavar="TEXT", help="Only ids that start with TEXT."),
        click.option(
            "--name", metavar="NAME", help="Only runs whose root task is NAME (or ends in .NAME)."
        ),
        click.option(
            "--older-than",
            callback=_check_age,
            metavar="DURATION",
            help="Only runs that ended (or, unfinished, started) longer ago than this (30d, 12h).",
        ),
        click.option(
            "--dry-run", is_flag=True, help="Print the count and the first ids; change nothing."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def filters_of(
    statuses: Sequence[str], prefix: str | None, name: str | None, older_than: str | None
) -> dict[str, Any]:
    """The Client's filter keywords (only those given)."""
    given = {
        "status": [s.upper() for s in statuses] or None,
        "prefix": prefix,
        "name": name,
        "older_than": older_than,
    }
    return {key: value for key, value in given.items() if value is not None}


def _is_terminal() -> bool:
    """Whether a person can answer a question (stdin is a terminal)."""
    return sys.stdin.isatty()


def confirm(question: str, yes: bool) -> None:
    """Ask ``question`` on a terminal; without one, refuse unless ``yes``.

    Raises:
        click.ClickException: no terminal and no ``--yes`` (one line, exit 1).
        click.Abort: the person said no.
    """
    if yes:
        return
    if not _is_terminal():
        raise fail(f"{question} No terminal to ask on: pass --yes (or --dry-run to list them)")
    click.confirm(question, abort=True, err=True)


def print_ids(what: str, ids: Sequence[str], as_json: bool) -> None:
    """A dry run's answer: the count, then the first :data:`SHOWN` ids."""
    if as_json:
        echo_json({"dry_run": True, "count": len(ids), "workflow_ids": list(ids)})
        return
    click.echo(f"{len(ids)} workflow(s) {what}")
    for workflow_id in ids[:SHOWN]:
        click.echo(f"  {workflow_id}")
    if len(ids) > SHOWN:
        click.echo(f"  ... and {len(ids) - SHOWN} more")


def _report_failures(failed: dict[str, str], total: int, verb: str) -> None:
    """Print each failure (id: why), then exit 1 with one line; nothing if none failed."""
    if not failed:
        return
    for workflow_id, why in list(failed.items())[:SHOWN]:
        click.echo(f"  {workflow_id}: {why}")
    if len(failed) > SHOWN:
        click.echo(f"  ... and {len(failed) - SHOWN} more")
    raise fail(f"{len(failed)} of {total} workflow(s) could not be {verb}")


# --- one workflow -----------------------------------------------------------------------------
@click.command()
@click.argument("workflow_id")
@click.option(
    "--from",
    "from_tasks",
    metavar="TASK",
    multiple=True,
    required=True,
    help="Run this task and every task that reads its output again (repeatable).",
)
@click.option("--allow-canceled", is_flag=True, help="Restart a CANCELED workflow too.")
@click.option("--run", "run_now", is_flag=True, help="Resume it here at once and print its output.")
@json_option
@pass_state
def restart(
    state: CliState,
    workflow_id: str,
    from_tasks: tuple[str, ...],
    allow_canceled: bool,
    run_now: bool,
    as_json: bool,
) -> None:
    """Set aside TASK's checkpoints and those downstream; the workflow becomes RESUMABLE.

    Works on FAILED, RESUMABLE and SUCCESSFUL workflows (RUNNING or PENDING: cancel first).
    The runs before stay in `durableflow show` and `metadata`. Nothing runs until `resume`
    (or --run, or a worker).
    """
    client = state.client()
    done = client.restart(workflow_id, list(from_tasks), allow_canceled=allow_canceled)
    rerun = sorted(done.rerun)
    forwarded = sorted(done.forwarded)
    if not run_now:
        if as_json:
            echo_json(
                {
                    "workflow_id": workflow_id,
                    "status": client.get_status(workflow_id).value,
                    "restart": done.restart,
                    "rerun": rerun,
                    "forwarded": forwarded,
                }
            )
            return
        click.echo(f"{workflow_id}: RESUMABLE (restart {done.restart})")
        click.echo(f"runs again: {', '.join(rerun) or '-'}")
        if forwarded:
            click.echo(f"continuations run again: {', '.join(forwarded)}")
        click.echo(f"run it with `durableflow resume {workflow_id}`")
        return
    with spinner(f"resuming {workflow_id}"):
        value = client.resume(workflow_id)
    if as_json:
        echo_json({"workflow_id": workflow_id, "status": client.get_status(workflow_id).value})
    else:
        print_value(value, False, hint=f"`durableflow output {workflow_id} --full` prints all")


@click.command()
@click.argument("workflow_id")
@click.argument("new_workflow_id")
@click.option(
    "--from",
    "from_task",
    metavar="TASK",
    help="Copy every checkpoint except TASK's and those downstream (default: all).",
)
@json_option
@pass_state
def fork(
    state: CliState, workflow_id: str, new_workflow_id: str, from_task: str | None, as_json: bool
) -> None:
    """Create NEW_WORKFLOW_ID, RESUMABLE, from copies of WORKFLOW_ID's checkpoints; run nothing."""
    client = state.client()
    new = client.fork(workflow_id, new_workflow_id, from_task=from_task)
    if as_json:
        echo_json(
            {"workflow_id": new, "forked_from": workflow_id, "status": client.get_status(new).value}
        )
        return
    click.echo(f"{new}: {client.get_status(new).value}, forked from {workflow_id}")
    click.echo(f"run it with `durableflow resume {new}`")


# --- many workflows ---------------------------------------------------------------------------
@click.command("resume-all")
@click.option("--include-failed", is_flag=True, help="Resume FAILED workflows too.")
@filter_options
@click.option("--yes", "-y", is_flag=True, help="Accepted for symmetry; resume-all never asks.")
@json_option
@pass_state
def resume_all(
    state: CliState,
    include_failed: bool,
    statuses: tuple[str, ...],
    prefix: str | None,
    name: str | None,
    older_than: str | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Resume every RESUMABLE (and FAILED) workflow the filter matches; exit 1 if any fails."""
    client = state.client()
    filters = filters_of(statuses, prefix, name, older_than)
    if dry_run:
        wanted = {WorkflowStatus.RESUMABLE} | ({WorkflowStatus.FAILED} if include_failed else set())
        if "status" in filters:
            wanted &= {WorkflowStatus(s) for s in filters.pop("status")}
        ids = [w for w, _ in client.list_all(wanted, **filters)] if wanted else []
        print_ids("would be resumed", ids, as_json)
        return
    handles = client.resume_all(include_failed, **filters)
    by_future = {future: workflow_id for workflow_id, future in handles}
    results: dict[str, dict[str, Any]] = {}
    with progress(len(handles), "resuming") as bar:
        for future in concurrent.futures.as_completed(by_future):
            workflow_id = by_future[future]
            error = future.exception()
            try:
                current = client.get_status(workflow_id).value
            except WorkflowError:
                current = "UNKNOWN"
            results[workflow_id] = {
                "workflow_id": workflow_id,
                "status": current,
                "error": one_line(error) if error else None,
            }
            bar.advance(f"{workflow_id}: {current}")
    rows = [results[w] for w, _ in handles]
    failed = {r["workflow_id"]: r["error"] for r in rows if r["error"]}
    if as_json:
        echo_json(rows)
    elif rows:
        table = Table(
            "WORKFLOW ID",
            "STATUS",
            "ERROR",
            caption=f"{len(rows) - len(failed)} of {len(rows)} resumed",
        )
        for r in rows:
            table.add(r["workflow_id"], r["status"], r["error"] or "")
        table.print()
    else:
        click.echo("nothing to resume")
    if failed:
        raise fail(
            f"{len(failed)} of {len(rows)} workflow(s) did not finish: "
            + ", ".join(list(failed)[:5])
            + (" ..." if len(failed) > 5 else "")
        )


@click.command("cancel-all")
@filter_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_state
def cancel_all(
    state: CliState,
    statuses: tuple[str, ...],
    prefix: str | None,
    name: str | None,
    older_than: str | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Cancel every workflow the filter matches (default: every one not finished)."""
    client = state.client()
    filters = filters_of(statuses, prefix, name, older_than)
    preview = client.cancel_all(**filters, dry_run=True)
    if dry_run:
        print_ids("would be canceled", preview.selected, as_json)
        return
    if not preview.selected:
        if as_json:
            echo_json({"selected": [], "canceled": [], "failed": {}})
        else:
            click.echo("nothing to cancel")
        return
    confirm(f"Cancel {len(preview.selected)} workflow(s)?", yes)
    with big_set_progress(len(preview.selected), "canceling") as done:
        result = client.cancel_all(**filters, on_done=done)
    if as_json:
        echo_json({"selected": result.selected, "canceled": result.acted, "failed": result.failed})
    else:
        click.echo(f"canceled {len(result.acted)} of {len(result.selected)} workflow(s)")
    _report_failures(result.failed, len(result.selected), "canceled")
