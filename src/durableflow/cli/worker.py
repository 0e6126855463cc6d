"""``durableflow worker``: run a storage's waiting workflows and schedules until stopped."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import click

from durableflow.cli._common import (
    CliState,
    install_warning_printer,
    parse_seconds,
    pass_state,
)
from durableflow.model.filters import parse_age
from durableflow.worker import Worker

__all__ = ["worker"]

log = logging.getLogger("durableflow.worker")


def _start_ui(storage: str, host: str, port: int, token: str | None) -> Any:
    """Serve the dashboard from a thread of this process (``--ui``)."""
    try:
        from durableflow.dashboard.security import UnsafeBindError
        from durableflow.dashboard.server import BackgroundServer, settings_from
    except ImportError as err:
        raise click.ClickException(
            f"--ui needs the 'dashboard' extra ({err.name} is not installed): "
            "pip install 'durableflow[dashboard]'"
        ) from None
    try:
        settings = settings_from(storage, host, port, token)
    except UnsafeBindError as err:
        raise click.UsageError(str(err)) from None
    server = BackgroundServer(settings).start()
    log.info("dashboard on %s", server.url)
    return server


def _parse_period(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """Click callback: a duration in seconds, where ``0`` (or ``0s``) means off."""
    try:
        seconds = parse_age(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    return seconds or 0.0


@click.command()
@click.option(
    "--max-running-workflows",
    type=click.IntRange(min=1),
    envvar="DURABLEFLOW_MAX_RUNNING_WORKFLOWS",
    help="Most workflows RUNNING under all workers of the storage together "
    "(give every worker the same number).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Most workflows this worker runs at once.",
)
@click.option(
    "--resume/--no-resume",
    "resume",
    default=True,
    show_default=True,
    help="Also resume RESUMABLE workflows (crashed or stopped runs).",
)
@click.option(
    "--schedules/--no-schedules",
    "schedules",
    default=True,
    show_default=True,
    help="Fire the storage's schedules.",
)
@click.option(
    "--poll-interval",
    callback=parse_seconds,
    default="1s",
    show_default=True,
    metavar="DURATION",
    help="Time between two scans of the storage.",
)
@click.option(
    "--prune-every",
    callback=_parse_period,
    default="300s",
    show_default=True,
    metavar="DURATION",
    help="How often to apply the stored retention policy (`durableflow retention set`) in the "
    "background, at most 20 deletes a second; 0 turns it off.",
)
@click.option(
    "--grace",
    callback=parse_seconds,
    default="10s",
    show_default=True,
    metavar="DURATION",
    help="On SIGTERM/SIGINT, how long running workflows may take to finish before they are "
    "stopped and left RESUMABLE.",
)
@click.option(
    "--executor",
    type=click.Choice(["thread", "process", "ray"]),
    default=None,
    help="Where tasks run (default: $DURABLEFLOW_EXECUTOR, else thread).",
)
@click.option(
    "--env-policy",
    type=click.Choice(["ignore", "warn", "error"]),
    default=None,
    help="When a workflow's recorded environment differs "
    "(default: $DURABLEFLOW_ENV_POLICY, else warn).",
)
@click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Add a directory to sys.path to import task functions from (repeatable; the "
    "current directory is always added).",
)
@click.option("--once", is_flag=True, help="Scan once, wait for the workflows started, and exit.")
@click.option(
    "--ui",
    "ui",
    is_flag=True,
    help="Also serve the web dashboard (as `durableflow ui`) from this worker's process.",
)
@click.option("--ui-host", default="127.0.0.1", show_default=True, help="The dashboard's address.")
@click.option(
    "--ui-port", default=8233, show_default=True, type=click.IntRange(0, 65535), help="Its port."
)
@click.option(
    "--ui-token",
    default=None,
    envvar="DURABLEFLOW_UI_TOKEN",
    help="The dashboard's token; needed with a --ui-host other than 127.0.0.1.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@pass_state
def worker(
    state: CliState,
    max_running_workflows: int | None,
    concurrency: int,
    resume: bool,
    schedules: bool,
    poll_interval: float,
    prune_every: float,
    grace: float,
    executor: str | None,
    env_policy: str | None,
    paths: tuple[str, ...],
    once: bool,
    ui: bool,
    ui_host: str,
    ui_port: int,
    ui_token: str | None,
    log_level: str,
) -> None:
    """Run PENDING workflows, resume RESUMABLE ones, and fire schedules, until SIGTERM.

    Several workers may serve one storage: each workflow runs under one of them at a time.
    A first SIGTERM or Ctrl-C stops gracefully (see --grace); a second one stops at once.
    """
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The worker's output is its log: durableflow's lines at --log-level (-v on the group
    # does not lower it), and warnings such as EnvironmentChangedWarning as one log line.
    logger = logging.getLogger("durableflow")
    level_before = logger.level
    logger.setLevel(log_level.upper())
    click.get_current_context().call_on_close(lambda: logger.setLevel(level_before))
    click.get_current_context().call_on_close(install_warning_printer(log))
    for path in reversed(paths):
        sys.path.insert(0, os.path.abspath(path))
    client = state.client(create=True, executor=executor, env_policy=env_policy)
    log.info("durableflow worker pid %d on storage %s", os.getpid(), client.storage.url)
    runner = Worker(
        client,
        max_running_workflows=max_running_workflows,
        concurrency=concurrency,
        resume=resume,
        schedules=schedules,
        poll_interval=poll_interval or 1.0,
        prune_every=prune_every,
    )
    hurry = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if runner.stopping:  # a second signal: no more grace
            hurry.set()
        log.info(
            "received %s: stopping (grace %gs)",
            signal.Signals(signum).name,
            0 if hurry.is_set() else grace,
        )
        runner.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if ui:
        dashboard = _start_ui(client.storage.url, ui_host, ui_port, ui_token)
        click.get_current_context().call_on_close(dashboard.stop)
    if once:
        runner.start_heartbeat()
        runner.run_once()
        runner.wait_idle()
        runner.wait_prune()
    else:
        runner.serve()
    stopped = runner.shutdown(0.0 if hurry.is_set() else (grace or 0.0))
    client.close(wait=False)
    log.info("worker stopped%s", f"; left RESUMABLE: {', '.join(stopped)}" if stopped else "")
    if stopped:
        # Their task threads cannot be interrupted; the workflows are RESUMABLE already and
        # every write is atomic, so exit now rather than wait for the tasks to return.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
