"""``durableflow actor list | show | calls | upgrade | delete``: the virtual actors of a storage.

``show`` and ``calls`` only read (no lease, nothing written, no user module needed except to
preview a state or a result made of the user's classes). ``upgrade`` records the class as it is
importable now (the current directory is on ``sys.path``) and this environment as the actor's.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from durableflow.actors import (
    ActorClass,
    actor_calls,
    actor_info,
    delete_actor,
    list_actors,
    upgrade_actor,
)
from durableflow.cli._common import CliState, Table, echo_json, fmt_time, pass_state

__all__ = ["actor"]

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def actor() -> None:
    """Virtual actors: durable keyed state with one writer at a time (@virtual_actor)."""


@actor.command("list")
@_json_option
@pass_state
def list_command(state: CliState, as_json: bool) -> None:
    """List the stored actors and their classes."""
    rows = list_actors(client=state.client())
    if as_json:
        echo_json([{"actor_id": aid, "class_name": name} for aid, name in rows])
        return
    table = Table("ACTOR ID", "CLASS")
    for aid, name in rows:
        table.add(aid, name)
    table.print()


@actor.command("show")
@click.argument("actor_id")
@click.option("--last", default=10, show_default=True, help="Calls of the history to show.")
@_json_option
@pass_state
def show(state: CliState, actor_id: str, last: int, as_json: bool) -> None:
    """An actor's class, version, state preview, pending calls and latest calls."""
    client = state.client()
    info = actor_info(actor_id, client=client)
    calls = actor_calls(actor_id, client=client, limit=last + len(info.pending))
    if as_json:
        echo_json({**info.to_json(), "calls": [call.to_json() for call in calls]})
        return
    click.echo(f"actor {info.actor_id}: {info.class_path} (version {info.version})")
    click.echo(f"  created   {fmt_time(info.created)}")
    if info.upgraded is not None:
        click.echo(f"  upgraded  {fmt_time(info.upgraded)}")
    click.echo(f"  state     {info.state}")
    click.echo(f"  committed {info.committed} call(s)")
    pending = ", ".join(map(str, info.pending)) if info.pending else "none"
    click.echo(f"  pending   {pending}")
    click.echo(f"  writer    {info.owner or 'none'}")
    _calls_table([c for c in calls if not c.pending][-last:] if last > 0 else [])


@actor.command("calls")
@click.argument("actor_id")
@click.option("--last", type=int, default=None, help="Only the last N calls.")
@_json_option
@pass_state
def calls(state: CliState, actor_id: str, last: int | None, as_json: bool) -> None:
    """An actor's calls, oldest first: method, result or error, times; pending ones too."""
    rows = actor_calls(actor_id, client=state.client(), limit=last)
    if as_json:
        echo_json([row.to_json() for row in rows])
        return
    _calls_table(rows)


def _calls_table(rows: list[Any]) -> None:
    table = Table("#", "METHOD", "STATUS", "RESULT / ERROR", "SUBMITTED", "FINISHED", "WORKFLOW")
    for row in rows:
        status = "PENDING" if row.pending else ("OK" if row.ok else "FAILED")
        table.add(
            row.seq,
            row.method + (" (sent)" if row.mode == "send" else ""),
            status,
            row.result if row.ok else row.error,
            fmt_time(row.submitted),
            fmt_time(row.finished),
            row.workflow_id,
        )
    table.print()


@actor.command("upgrade")
@click.argument("actor_id")
@click.option(
    "--class",
    "target",
    metavar="MODULE:ATTR",
    default=None,
    help="The @virtual_actor class to record (default: the stored class's name, imported now).",
)
@pass_state
def upgrade(state: CliState, actor_id: str, target: str | None) -> None:
    """Record the actor's class as it is now, and this environment, as the actor's."""
    new = _load_class(target) if target is not None else None
    version = upgrade_actor(actor_id, new, client=state.client())
    click.echo(f"{actor_id}: upgraded to version {version}")


def _load_class(target: str) -> ActorClass:
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise click.BadParameter(f"{target!r}: expected MODULE:ATTR, e.g. shop.carts:Cart")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise click.BadParameter(f"cannot load {target!r}: {err}") from None
    if not isinstance(obj, ActorClass):
        raise click.BadParameter(f"{target!r} is not a @virtual_actor class")
    return obj


@actor.command("delete")
@click.argument("actor_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete(state: CliState, actor_id: str, yes: bool) -> None:
    """Delete an actor: its state, its calls (pending ones are dropped) and their results."""
    client = state.client()
    info = actor_info(actor_id, client=client)
    if not yes:
        click.confirm(
            f"Delete actor {actor_id!r} ({info.class_name}, {info.committed} call(s), "
            f"{len(info.pending)} pending)?",
            abort=True,
            err=True,
        )
    delete_actor(actor_id, client=client)
    click.echo(f"{actor_id}: deleted")
