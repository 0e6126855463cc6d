"""``durableflow schedule add | list | show | remove | pause | resume``: recurring workflows."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from durableflow.cli._common import CliState, Table, echo_json, fail, parse_seconds, pass_state
from durableflow.model.schedule import ScheduleOptions
from durableflow.model.task import TaskFunction

__all__ = ["schedule"]

F = TypeVar("F", bound=Callable[..., Any])

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _schedule_options(command: F) -> F:
    """One flag per :class:`ScheduleOptions` field, its help and default from there.

    A policy (an enum) is a choice of its values, a float is a duration (``30s``, ``5m``), an
    int is a count of at least 1, a string is taken as is.
    """
    for field in reversed(dataclasses.fields(ScheduleOptions)):
        default = field.default
        settings: dict[str, Any] = {"show_default": True, "help": field.metadata["help"]}
        if isinstance(default, enum.Enum):
            settings |= {"type": click.Choice([m.value for m in type(default)])}
            default = default.value
        elif isinstance(default, float):
            settings |= {"callback": parse_seconds, "metavar": "DURATION"}
            default = f"{default:g}s"
        elif isinstance(default, int):
            settings |= {"type": click.IntRange(min=1)}
        flag = "--" + field.name.replace("_", "-")
        decls = (flag, *field.metadata["flags"], field.name)
        command = click.option(*decls, default=default, **settings)(command)
    return command


def load_target(target: str) -> Any:
    """The object named ``module:attribute`` (a DAG, a DAG factory, or a task without arguments)."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise click.BadParameter(
            f"{target!r}: expected MODULE:ATTRIBUTE, e.g. myproject.flows:nightly"
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise click.BadParameter(f"cannot load {target!r}: {err}") from None
    if isinstance(obj, TaskFunction):
        obj = obj.bind()  # a task that takes no arguments is a one-task DAG
    return obj


@click.group()
def schedule() -> None:
    """Recurring workflows, fired by `durableflow worker`; each tick runs `<name>@<tick>` once."""


@schedule.command("add")
@click.argument("name")
@click.option(
    "--dag",
    "target",
    required=True,
    metavar="MODULE:ATTR",
    help="A DAG, a function returning one (given the tick time if it takes an argument), "
    "or a task without arguments. Workers must be able to import it.",
)
@click.option("--cron", metavar="EXPR", help='Cron expression, e.g. "*/5 * * * *" or @daily.')
@click.option("--every", metavar="DURATION", help="Fixed interval instead, e.g. 30s, 5m, 1h.")
@_schedule_options
@click.option(
    "--metadata", "metadata_json", metavar="JSON", help="User metadata copied into every run."
)
@click.option("--replace", is_flag=True, help="Overwrite a schedule of the same name.")
@_json_option
@pass_state
def add(
    state: CliState,
    /,
    name: str,
    target: str,
    cron: str | None,
    every: str | None,
    metadata_json: str | None,
    replace: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Add a schedule NAME running the DAG at MODULE:ATTR (--cron or --every)."""
    if (cron is None) == (every is None):
        raise click.UsageError("give exactly one of --cron and --every")
    try:
        metadata = json.loads(metadata_json) if metadata_json else None
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"--metadata is not JSON: {err}") from None
    dag = load_target(target)
    info = state.client(create=True).schedule(
        name,
        dag,
        cron=cron,
        every=every,
        metadata=metadata,
        replace=replace,
        **options,  # the ScheduleOptions fields, by name
    )
    if as_json:
        echo_json(info)
    else:
        click.echo(f"schedule {name}: {info['schedule']}, next tick {info['next_tick']}")


@schedule.command("list")
@_json_option
@pass_state
def list_schedules(state: CliState, as_json: bool) -> None:
    """List schedules: timing, policies, next tick, last run."""
    client = state.client()
    rows = client.list_schedules()
    if as_json:
        echo_json(rows)
        return
    table = Table(
        "NAME",
        "SCHEDULE",
        "NEXT TICK (UTC)",
        "LAST RUN",
        "FIRED",
        "MISSED",
        "POLICIES",
        "STATE",
        caption=f"{len(rows)} schedule(s) in {client.storage.url}",
    )
    for r in rows:
        table.add(
            r["name"],
            r["schedule"],
            r["next_tick"] or "-",
            r["last_workflow_id"] or "-",
            r["fired"],
            r["missed"],
            f"catchup={r['catchup']} overlap={r['overlap']}",
            "paused"
            if r["paused"]
            else ("error: " + r["last_error"] if r["last_error"] else "active"),
        )
    table.print()


@schedule.command("show")
@click.argument("name")
@pass_state
def show_schedule(state: CliState, name: str) -> None:
    """Print one schedule as JSON."""
    echo_json(state.client().get_schedule(name))


@schedule.command("remove")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def remove(state: CliState, name: str, yes: bool) -> None:
    """Remove a schedule (the workflows it started are kept)."""
    client = state.client()
    client.get_schedule(name)
    if not yes:
        click.confirm(f"Remove schedule {name!r}?", abort=True, err=True)
    client.remove_schedule(name)
    click.echo(f"schedule {name}: removed")


@schedule.command("pause")
@click.argument("name")
@pass_state
def pause(state: CliState, name: str) -> None:
    """Stop firing a schedule."""
    client = state.client()
    if client.get_schedule(name)["paused"]:
        raise fail(f"schedule {name!r} is already paused")
    client.pause_schedule(name)
    click.echo(f"schedule {name}: paused")


@schedule.command("resume")
@click.argument("name")
@pass_state
def resume_schedule(state: CliState, name: str) -> None:
    """Fire a paused schedule again, from now on (ticks missed while paused are skipped)."""
    client = state.client()
    if not client.get_schedule(name)["paused"]:
        raise fail(f"schedule {name!r} is not paused")
    client.resume_schedule(name)
    click.echo(f"schedule {name}: active, next tick {client.get_schedule(name)['next_tick']}")
