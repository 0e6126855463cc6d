"""``durableflow``: operate the workflows of a storage from a shell.

Every command takes the global ``--storage`` (else ``$DURABLEFLOW_STORAGE``, else
``$RAY_WORKFLOW_STORAGE``, else the library's default storage). Tables are for people;
``--json`` is for scripts. A library error (unknown id, bad storage URL, no storage at the
path, refused action) is printed as one line and exits 1; a usage error exits 2. Python
warnings (such as ``EnvironmentChangedWarning``) are printed as one ``warning: ...`` line;
``-v`` shows durableflow's INFO log lines, ``-vv`` its DEBUG lines.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from durableflow.cli._common import CliState, convert_errors, install_warning_printer, setup_logging
from durableflow.cli.actions import cancel, delete, resume
from durableflow.cli.actors import actor
from durableflow.cli.env import env
from durableflow.cli.logs import logs
from durableflow.cli.retention import prune, retention
from durableflow.cli.schedules import schedule
from durableflow.cli.steering import cancel_all, fork, restart, resume_all
from durableflow.cli.ui import ui
from durableflow.cli.worker import worker
from durableflow.cli.workflows import list_workflows, metadata, output, show, status

__all__ = ["main"]


class _Group(click.Group):
    """Turns library errors into one-line messages (exit 1) instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except Exception as err:
            converted = convert_errors(err)
            if converted is None:
                raise
            raise converted from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--storage",
    "-s",
    metavar="URL",
    default=None,
    help="Storage URL or path (default: $DURABLEFLOW_STORAGE, $RAY_WORKFLOW_STORAGE, "
    "else the default storage: a SQLite file in the user's data directory).",
)
@click.option(
    "--verbose",
    "-v",
    count=True,
    help="Log what durableflow does on stderr: -v warnings and INFO lines (workflows started "
    "and finished, task failures and retries), -vv DEBUG (every task attempt).",
)
@click.version_option(version=None, package_name="durableflow", message="durableflow %(version)s")
@click.pass_context
def cli(ctx: click.Context, storage: str | None, verbose: int) -> None:
    """Operate durableflow workflows: list, inspect, resume, cancel, run workers and schedules."""
    # Task functions and schedule factories are imported by module path, as in `python -m`.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    ctx.call_on_close(install_warning_printer())
    levels = {0: logging.ERROR, 1: logging.INFO}
    ctx.call_on_close(setup_logging(levels.get(verbose, logging.DEBUG)))
    ctx.obj = CliState(storage)


for command in (
    list_workflows,
    status,
    show,
    output,
    metadata,
    logs,
    resume,
    resume_all,
    cancel,
    delete,
    restart,
    fork,
    cancel_all,
    prune,
    retention,
    worker,
    schedule,
    env,
    ui,
    actor,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``durableflow`` console script."""
    cli.main(args=argv, prog_name="durableflow")
