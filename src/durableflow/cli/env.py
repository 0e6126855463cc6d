"""``durableflow env show | diff``: the runtime environment recorded with a workflow."""

from __future__ import annotations

from typing import Any

import click

from durableflow.cli._common import CliState, Table, echo_json, pass_state

__all__ = ["env"]

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def env() -> None:
    """The environment recorded when a workflow was submitted, and what changed since."""


@env.command("show")
@click.argument("workflow_id")
@click.option("--packages", is_flag=True, help="List every installed package recorded.")
@_json_option
@pass_state
def show_env(state: CliState, workflow_id: str, packages: bool, as_json: bool) -> None:
    """Print the environment recorded with a workflow."""
    recorded: dict[str, Any] = state.reader().get_metadata(workflow_id).get("runtime_env") or {}
    if as_json:
        echo_json(recorded)
        return
    if not recorded:
        click.echo(f"workflow {workflow_id}: no environment recorded")
        return
    for name in ("python", "implementation", "platform", "durableflow"):
        click.echo(f"{name:<15}{recorded.get(name, '-')}")
    click.echo(f"{'packages':<15}{len(recorded.get('packages') or {})}")
    table = Table("TASK FUNCTION", "SOURCE FINGERPRINT")
    for function, fingerprint in sorted((recorded.get("functions") or {}).items()):
        table.add(function, fingerprint)
    table.print()
    for task_id, runtime_env in sorted((recorded.get("task_runtime_envs") or {}).items()):
        click.echo(f"runtime_env of task {task_id}: {runtime_env}")
    if packages:
        table = Table("PACKAGE", "VERSION")
        for name, version in sorted((recorded.get("packages") or {}).items()):
            table.add(name, version)
        table.print()


@env.command("diff")
@click.argument("workflow_id")
@click.option("--exit-code", is_flag=True, help="Exit 1 when something changed (like git diff).")
@_json_option
@pass_state
def diff(state: CliState, workflow_id: str, exit_code: bool, as_json: bool) -> None:
    """Compare a workflow's recorded environment with this one: packages, Python, task code."""
    found = state.reader().environment_diff(workflow_id)
    if as_json:
        echo_json(found.to_json())
    elif not found.recorded:
        click.echo(f"workflow {workflow_id}: no environment recorded, nothing to compare")
    elif found.is_empty:
        click.echo(f"workflow {workflow_id}: environment unchanged")
    else:
        click.echo(f"workflow {workflow_id}: {len(found.lines())} change(s) since submission")
        for line in found.lines():
            click.echo(f"  {line}")
    if exit_code and not found.is_empty:
        raise click.exceptions.Exit(1)
