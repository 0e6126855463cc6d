"""Workflow commands that act (through the Client): resume, resume-all, cancel, delete."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import click

from durableflow.cli._common import (
    CliState,
    Table,
    echo_json,
    fail,
    one_line,
    parse_seconds,
    pass_state,
    progress,
    spinner,
)
from durableflow.cli.workflows import print_value
from durableflow.errors import WorkflowError
from durableflow.model.status import ACTIVE, WorkflowStatus

__all__ = ["cancel", "delete", "resume", "resume_all"]

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.command()
@click.argument("workflow_id")
@_json_option
@pass_state
def resume(state: CliState, workflow_id: str, as_json: bool) -> None:
    """Resume a FAILED or RESUMABLE workflow here, wait for it, and print its output."""
    client = state.client()
    with spinner(f"resuming {workflow_id}"):
        value = client.resume(workflow_id)
    if as_json:
        echo_json({"workflow_id": workflow_id, "status": client.get_status(workflow_id).value})
    else:
        print_value(value, False, hint=f"`durableflow output {workflow_id} --full` prints all")


@click.command("resume-all")
@click.option("--include-failed", is_flag=True, help="Resume FAILED workflows too.")
@_json_option
@pass_state
def resume_all(state: CliState, include_failed: bool, as_json: bool) -> None:
    """Resume every RESUMABLE (and FAILED) workflow here, with progress; exit 1 if any fails."""
    client = state.client()
    handles = client.resume_all(include_failed)
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
    failed = [r for r in rows if r["error"]]
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
            + ", ".join(r["workflow_id"] for r in failed[:5])
            + (" ..." if len(failed) > 5 else "")
        )


@click.command()
@click.argument("workflow_id")
@click.option(
    "--timeout",
    callback=parse_seconds,
    default="30s",
    show_default=True,
    metavar="DURATION",
    help="How long to wait for a runner in another process to stop.",
)
@pass_state
def cancel(state: CliState, workflow_id: str, timeout: float) -> None:
    """Cancel a workflow: no new task starts; status CANCELED; checkpoints kept."""
    client = state.client()
    current = client.get_status(workflow_id)
    if current.is_terminal:
        raise fail(f"workflow {workflow_id!r} is already {current.value}; nothing to cancel")
    client.cancel(workflow_id, timeout=timeout)
    after = client.get_status(workflow_id)
    if after is not WorkflowStatus.CANCELED:
        raise fail(
            f"workflow {workflow_id!r} is {after.value}: the cancel was not honoured "
            f"in {timeout:g}s"
        )
    click.echo(f"{workflow_id}: CANCELED")


@click.command()
@click.argument("workflow_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete(state: CliState, workflow_id: str, yes: bool) -> None:
    """Delete everything stored for a workflow (refused while it is RUNNING or PENDING)."""
    client = state.client()
    current = client.get_status(workflow_id)
    if current in ACTIVE:
        raise fail(f"workflow {workflow_id!r} is {current.value}; cancel it before deleting")
    if not yes:
        click.confirm(
            f"Delete workflow {workflow_id!r} ({current.value}) and all its checkpoints?",
            abort=True,
            err=True,
        )
    client.delete(workflow_id)
    click.echo(f"{workflow_id}: deleted")
