"""Retention commands (through the Client): ``prune`` and ``retention set|show``.

``prune`` takes the filter of the bulk commands (:mod:`durableflow.cli.steering`); with no
filter it applies the stored policy. It deletes, so it asks first on a terminal and refuses
without one unless ``--yes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from durableflow.cli._common import CliState, big_set_progress, echo_json, fail, pass_state
from durableflow.cli.steering import (
    SHOWN,
    confirm,
    filter_options,
    filters_of,
    json_option,
    print_ids,
)

__all__ = ["prune", "retention"]


@click.command()
@filter_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--now", type=float, hidden=True, help="The Unix time ages are measured at (tests).")
@json_option
@pass_state
def prune(
    state: CliState,
    statuses: tuple[str, ...],
    prefix: str | None,
    name: str | None,
    older_than: str | None,
    dry_run: bool,
    yes: bool,
    now: float | None,
    as_json: bool,
) -> None:
    """Delete finished workflows: those the filter matches, or with no filter the stored policy.

    Never deletes a RUNNING or PENDING workflow, nor a RESUMABLE one by age. Deletes a killed
    prune left half done first. See `durableflow retention set`.
    """
    client = state.client()
    filters = filters_of(statuses, prefix, name, older_than)
    if not filters and client.get_retention().is_empty:
        raise fail(
            "no filter and no retention policy: nothing to prune "
            "(see `durableflow retention set`, or give --status/--prefix/--name/--older-than)"
        )
    preview = client.prune(**filters, dry_run=True, now=now)
    if dry_run:
        print_ids("would be deleted", preview.selected, as_json)
        return
    if not preview.selected and not preview.finished:
        if as_json:
            echo_json({"selected": [], "deleted": [], "finished": [], "skipped": {}})
        else:
            click.echo("nothing to prune")
        return
    confirm(f"Delete {len(preview.selected)} workflow(s) and all their checkpoints?", yes)
    with big_set_progress(len(preview.selected), "deleting") as done:
        result = client.prune(**filters, now=now, on_done=done)
    if as_json:
        echo_json(
            {
                "selected": result.selected,
                "deleted": result.deleted,
                "finished": result.finished,
                "skipped": result.skipped,
            }
        )
    else:
        click.echo(result.summary())
        for workflow_id, why in list(result.skipped.items())[:SHOWN]:
            click.echo(f"  skipped {workflow_id}: {why}")
    # A run that changed since the selection (resumed, restarted, claimed) is skipped on
    # purpose; any other reason is a delete that failed (the next prune finishes it).
    failed = [w for w, why in result.skipped.items() if not _skipped_on_purpose(why)]
    if failed:
        raise fail(
            f"{len(failed)} of {len(result.selected)} workflow(s) could not be deleted: "
            + ", ".join(failed[:5])
            + (" ..." if len(failed) > 5 else "")
        )


def _skipped_on_purpose(why: str) -> bool:
    """Whether a prune's skip reason says the run changed, rather than that a delete failed."""
    return why == "changed since it was selected" or why.startswith("WorkflowStillActiveError")


# --- retention --------------------------------------------------------------------------------
@click.group()
def retention() -> None:
    """The retention policy every process and worker of the storage applies."""


def _parse_ages(values: Sequence[str]) -> dict[str, str]:
    ages: dict[str, str] = {}
    for value in values:
        status, sep, age = value.partition("=")
        if not sep or not status or not age:
            raise click.BadParameter(f"expected STATUS=AGE (e.g. SUCCESSFUL=30d), got {value!r}")
        ages[status.strip().upper()] = age.strip()
    return ages


def _show_policy(policy: Any, as_json: bool) -> None:
    data = policy.to_json()
    if as_json:
        echo_json(data)
        return
    if policy.is_empty:
        click.echo("no retention policy: nothing is pruned")
        return
    for status, text in data["ages_text"].items():
        click.echo(f"{status}: kept {text} after the run ended")
    if data["keep_last"] is not None:
        click.echo(f"schedules: the last {data['keep_last']} finished run(s) of each kept")
    for schedule, count in sorted(data["keep_last_by_schedule"].items()):
        click.echo(f"schedule {schedule}: the last {count} finished run(s) kept")


@retention.command("set")
@click.argument("ages", nargs=-1, metavar="STATUS=AGE...")
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    help="Keep at most N finished runs of each schedule.",
)
@json_option
@pass_state
def retention_set(
    state: CliState, ages: tuple[str, ...], keep_last: int | None, as_json: bool
) -> None:
    """Store the policy (replacing the old one): e.g. SUCCESSFUL=30d FAILED=90d CANCELED=7d.

    RUNNING, PENDING and RESUMABLE workflows are never pruned by age. With no argument and no
    --keep-last the policy is cleared.
    """
    policy = state.client().set_retention(_parse_ages(ages), keep_last)
    _show_policy(policy, as_json)


@retention.command("show")
@json_option
@pass_state
def retention_show(state: CliState, as_json: bool) -> None:
    """Print the stored policy."""
    _show_policy(state.client().get_retention(), as_json)
