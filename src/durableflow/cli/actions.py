"""Workflow commands that act (through the Client): resume, resume-all, cancel, delete."""

from __future__ import annotations

import click

from durableflow.cli._common import (
    CliState,
    echo_json,
    fail,
    parse_seconds,
    pass_state,
    spinner,
)
from durableflow.cli.workflows import print_value
from durableflow.model.status import ACTIVE, WorkflowStatus

__all__ = ["cancel", "delete", "resume"]

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
