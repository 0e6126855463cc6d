"""Workflow commands that only read (through the Reader): list, status, output, metadata.

``show`` lives in :mod:`durableflow.cli.view` and is re-exported here with ``status_counts``;
:func:`print_value` (an output printed cut to ``PREVIEW_CHARS``) is shared by the commands that
print a workflow's output.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from durableflow.cli._common import (
    CliState,
    Table,
    echo_json,
    fail,
    fmt_duration,
    fmt_time,
    parse_seconds,
    pass_state,
)
from durableflow.cli.view import show, status_counts
from durableflow.model.status import WorkflowStatus

__all__ = [
    "list_workflows",
    "metadata",
    "output",
    "print_value",
    "show",
    "status",
    "status_counts",
]

_STATUS = click.Choice([s.value for s in WorkflowStatus], case_sensitive=False)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


DEFAULT_LIMIT = 50
"""Rows ``durableflow list`` shows without ``--limit`` or ``--all``."""


@click.command("list")
@click.option(
    "--status", "statuses", type=_STATUS, multiple=True, help="Only this status (repeatable)."
)
@click.option(
    "--since",
    callback=parse_seconds,
    metavar="DURATION",
    help="Only workflows created within this long (30s, 5m, 2h, 1d).",
)
@click.option("--prefix", metavar="TEXT", help="Only ids that start with TEXT.")
@click.option(
    "--name", metavar="NAME", help="Only runs whose root task is NAME (or ends in .NAME)."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help=f"The N most recent (default {DEFAULT_LIMIT}; with --short: the first N by id).",
)
@click.option("--all", "show_all", is_flag=True, help="Every workflow, not only the most recent.")
@click.option(
    "--short",
    is_flag=True,
    help="Only ids and statuses, by id: reads no run record of a finished workflow "
    "(fast on a big storage).",
)
@_json_option
@pass_state
def list_workflows(
    state: CliState,
    statuses: tuple[str, ...],
    since: float | None,
    prefix: str | None,
    name: str | None,
    limit: int | None,
    show_all: bool,
    short: bool,
    as_json: bool,
) -> None:
    """List workflows, newest first: id, status, root task, start, end, duration.

    The 50 most recent by default (``--limit N``, ``--all``).

    One pass over the status index and one listing of the creation index (which orders the
    workflows by creation time), then only the shown page's run records are read (for their
    times); a workflow without a creation entry (stored by an older version) is placed by its
    run record. No metadata, environment or lease is read for a finished workflow.
    ``--short`` lists ids and statuses by id and reads no run record of a finished workflow.
    ``--name`` reads each candidate's run record and root task spec.
    """
    reader = state.reader()
    if limit is None and not show_all and not short:
        limit = DEFAULT_LIMIT
    found, more = reader.list_workflows(
        set(statuses) or None,
        prefix=prefix,
        since=None if since is None else time.time() - since,
        limit=None if name is not None else limit,
        newest_first=not short,
    )
    if name is not None:  # the root task's name: the bulk calls' filter, then --limit
        matched = reader.list_filtered(set(statuses) or None, prefix=prefix, name=name)
        named = {workflow_id for workflow_id, _ in matched}
        found = [summary for summary in found if summary.workflow_id in named][:limit]
    caption = f"{len(found)} workflow(s) in {reader.url}"
    if more is not None and not short:
        caption += f", the {len(found)} most recent (--limit N or --all for more)"
    if short:
        if as_json:
            echo_json([{"workflow_id": r.workflow_id, "status": r.status.value} for r in found])
            return
        table = Table("WORKFLOW ID", "STATUS", caption=caption)
        for summary in found:
            table.add(summary.workflow_id, summary.status.value)
        table.print()
        return
    rows = [summary.to_json() for summary in found]
    if as_json:
        echo_json(rows)
        return
    table = Table("WORKFLOW ID", "STATUS", "ROOT TASK", "START", "END", "DURATION", caption=caption)
    for r in rows:
        table.add(
            r["workflow_id"],
            r["status"],
            r["root_task_id"] or "-",
            fmt_time(r["start_time"]),
            fmt_time(r["end_time"]),
            fmt_duration(r["duration"]),
        )
    table.print()


@click.command()
@click.argument("workflow_id")
@_json_option
@pass_state
def status(state: CliState, workflow_id: str, as_json: bool) -> None:
    """Print a workflow's status."""
    value = state.reader().get_status(workflow_id).value
    if as_json:
        echo_json({"workflow_id": workflow_id, "status": value})
    else:
        click.echo(value)


PREVIEW_CHARS = 10_000
"""Characters of an output printed without ``--full``."""


def _preview(value: Any, limit: int) -> tuple[str, str]:
    """The text shown for ``value`` cut to ``limit`` characters, and what was left out ("").

    A str prints as itself, anything else as its ``repr``. bytes are cut before ``repr`` so a
    200 MB value is not turned into 600 MB of text just to print 10,000 characters of it.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = memoryview(value)[:limit].tobytes()
        text = repr(data)
        if len(value) <= limit and len(text) <= limit:
            return text, ""
        return text[:limit], f"the output is {memoryview(value).nbytes:,} bytes"
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text, ""
    return text[:limit], f"{len(text) - limit:,} more characters"


def _write_value(value: Any, path: str, as_json: bool) -> int:
    """Write ``value`` to ``path`` (bytes raw, a str as UTF-8, else JSON or repr); bytes written."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, str) and not as_json:
        data = value.encode()
    else:
        data = (_json_text(value) if as_json else repr(value)).encode() + b"\n"
    with open(path, "wb") as handle:
        handle.write(data)
    return len(data)


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, indent=2)
    except (TypeError, ValueError):
        raise fail(
            f"the output is a {type(value).__name__}, which is not JSON-serializable; "
            "omit --json to print its repr"
        ) from None


def print_value(value: Any, as_json: bool, *, full: bool = False, hint: str = "") -> None:
    """Print an output: JSON, or its text (a str) or ``repr``, cut to PREVIEW_CHARS unless full."""
    if as_json:
        click.echo(_json_text(value))
        return
    if full:
        click.echo(value if isinstance(value, str) else repr(value))
        return
    text, left_out = _preview(value, PREVIEW_CHARS)
    click.echo(text)
    if left_out:
        click.echo(f"… ({left_out}; {hint})", err=True)


@click.command()
@click.argument("workflow_id")
@click.option(
    "--task", "task_id", metavar="TASK_ID", help="One task's output instead of the workflow's."
)
@click.option("--wait", is_flag=True, help="Wait for a running workflow to finish.")
@click.option(
    "--timeout",
    callback=parse_seconds,
    metavar="DURATION",
    help="With --wait: give up after this long.",
)
@click.option(
    "--full",
    is_flag=True,
    help=f"Print all of a long output (by default the first {PREVIEW_CHARS:,} characters).",
)
@click.option(
    "--out",
    "out_path",
    metavar="FILE",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the output to FILE instead of printing it: bytes as they are, a str as "
    "UTF-8 text, anything else as its repr (as JSON with --json). Not a pickle.",
)
@_json_option
@pass_state
def output(
    state: CliState,
    workflow_id: str,
    task_id: str | None,
    wait: bool,
    timeout: float | None,
    full: bool,
    out_path: str | None,
    as_json: bool,
) -> None:
    """Print a workflow's output (or one task's): a str as is, anything else as its repr.

    Long outputs are cut to their first 10,000 characters; --full prints all, --out FILE
    writes it to a file.
    """
    reader = state.reader()
    try:
        value = reader.get_output(workflow_id, task_id=task_id, timeout=(timeout if wait else 0.0))
    except TimeoutError:
        current = reader.get_status(workflow_id).value
        hint = "" if wait else "; pass --wait to wait for it"
        raise fail(f"workflow {workflow_id!r} is {current} and has no output yet{hint}") from None
    if out_path is not None:
        size = _write_value(value, out_path, as_json)
        click.echo(f"wrote {size:,} bytes to {out_path}", err=True)
        return
    print_value(value, as_json, full=full, hint="--full to print all, --out FILE to write it")


@click.command()
@click.argument("workflow_id")
@click.option("--task", "task_id", metavar="TASK_ID", help="One task's metadata.")
@_json_option
@pass_state
def metadata(state: CliState, workflow_id: str, task_id: str | None, as_json: bool) -> None:
    """Print a workflow's (or a task's) metadata as JSON: status, metadata, stats, environment."""
    echo_json(state.reader().get_metadata(workflow_id, task_id))
