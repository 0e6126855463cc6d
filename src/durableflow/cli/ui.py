"""``durableflow ui``: serve the web dashboard of a storage (needs the ``dashboard`` extra)."""

from __future__ import annotations

import click

from durableflow.cli._common import CliState, pass_state

__all__ = ["ui"]


def _missing_extra(err: ImportError) -> click.ClickException:
    return click.ClickException(
        f"the dashboard needs the 'dashboard' extra ({err.name} is not installed): "
        "pip install 'durableflow[dashboard]'"
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8233, show_default=True, type=click.IntRange(0, 65535))
@click.option("--open", "open_browser", is_flag=True, help="Open it in a browser.")
@click.option("--read-only", is_flag=True, help="Hide and refuse every action.")
@click.option(
    "--token",
    default=None,
    envvar="DURABLEFLOW_UI_TOKEN",
    help="Require this token (Bearer header, or ?token= once in a browser); needed to bind "
    "anything but 127.0.0.1 [env: DURABLEFLOW_UI_TOKEN].",
)
@pass_state
def ui(
    state: CliState,
    host: str,
    port: int,
    open_browser: bool,
    read_only: bool,
    token: str | None,
) -> None:
    """Serve the web dashboard: workflows, DAGs, timelines, logs, schedules, actions.

    It reads the storage directly (``--storage``, as every command): no server or database
    of its own. Resumes are handed to `durableflow worker`s; nothing runs in the web process.
    """
    try:
        from durableflow.dashboard.security import UnsafeBindError
        from durableflow.dashboard.server import serve
    except ImportError as err:
        raise _missing_extra(err) from None
    try:
        serve(
            storage=state.storage,
            host=host,
            port=port,
            token=token,
            read_only=read_only,
            open_browser=open_browser,
        )
    except UnsafeBindError as err:
        raise click.UsageError(str(err)) from None
