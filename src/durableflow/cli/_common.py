"""What every command shares: the Reader and Client, error reporting, tables, JSON, times.

Tables use ``rich`` when it is installed (the ``cli`` extra: ``pip install '.[cli]'``) and plain
aligned columns otherwise; ``--json`` output never depends on it.

Commands that only read (``list``, ``status``, ``show``, ``output``, ``metadata``, ``env``)
use a :class:`~durableflow.client.Reader`: no executor, no lease, no Ray (even with
``DURABLEFLOW_EXECUTOR=ray``). The storage is opened with ``create=False``: a mistyped path or
URL fails with "no durableflow storage at ..." and creates nothing. Only ``worker`` and
``schedule add`` create a storage that does not exist yet.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

import click

from durableflow import config
from durableflow.client import Client, Reader
from durableflow.errors import WorkflowError
from durableflow.model.durations import format_seconds, parse_duration

__all__ = [
    "CliState",
    "Table",
    "echo_json",
    "fail",
    "fmt_duration",
    "fmt_time",
    "install_warning_printer",
    "one_line",
    "parse_seconds",
    "pass_state",
    "setup_logging",
    "spinner",
]

F = TypeVar("F", bound=Callable[..., Any])


class CliState:
    """The global options, and the Reader and Client opened on first use (closed at the end)."""

    def __init__(self, storage: str | None) -> None:
        self.storage = storage
        self._reader: Reader | None = None
        self._client: Client | None = None
        self._registered = False

    def _spec(self) -> str:
        """``--storage``, else ``$DURABLEFLOW_STORAGE``, else the default."""
        return self.storage if self.storage is not None else config.storage_from_env()

    def _close_at_end(self) -> None:
        if not self._registered:
            click.get_current_context().call_on_close(self._close)
            self._registered = True

    def reader(self) -> Reader:
        """The Reader of the storage (which must exist); for the commands that only read.

        Raises:
            StorageError: "no durableflow storage at ...".
        """
        if self._reader is None:
            self._reader = Reader(self._spec())
            self._close_at_end()
        return self._reader

    def client(self, *, create: bool = False, **options: Any) -> Client:
        """The Client of the storage, for the commands that run or change workflows.

        Args:
            create: create the storage if nothing is there (``worker``, ``schedule add``);
                otherwise a missing storage raises StorageError "no durableflow storage at ...".
            **options: passed to :class:`~durableflow.Client`.
        """
        if self._client is None:
            if create:
                self._client = Client(self._spec(), **options)
            else:  # opened by the Reader, which never creates it (and closes it at the end)
                self._client = Client(self.reader().storage, **options)
            self._close_at_end()
        return self._client

    def _close(self) -> None:
        if self._client is not None:
            self._client.close(wait=False)
            self._client = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None


pass_state = click.make_pass_decorator(CliState)


def one_line(err: BaseException) -> str:
    """The first line of an error's message, never empty."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def fail(message: str) -> click.ClickException:
    """An error the CLI prints as one line and exits 1 with."""
    return click.ClickException(message)


def convert_errors(err: BaseException) -> click.ClickException | None:
    """The one-line CLI error for a library error, or None if ``err`` is not ours to report."""
    if isinstance(err, (WorkflowError, ValueError, TypeError, TimeoutError)):
        return click.ClickException(one_line(err))
    return None


def setup_logging(level: int) -> Callable[[], None]:
    """Send durableflow's log lines (loggers ``durableflow.*``) at ``level`` and above to stderr.

    At ERROR (the CLI without ``-v``) no handler is added: the few error lines go through
    Python's last-resort handler, and the WARNING lines a library user gets (a failed workflow,
    say) are left out, since the command reports the outcome itself in one line.

    Returns:
        A function that puts the logger's level back (for the end of the command).
    """
    if level < logging.ERROR:
        logging.basicConfig(
            level=logging.WARNING,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    logger = logging.getLogger("durableflow")
    before = logger.level
    logger.setLevel(level)
    return lambda: logger.setLevel(before)


def _warning_line(message: Warning | str, category: type[Warning]) -> str:
    """``warning: <message>`` on one line (the category named unless it is a plain warning)."""
    text = " ".join(str(message).split())
    name = category.__name__
    prefix = "" if name in ("UserWarning", "Warning") else f"{name}: "
    return f"warning: {prefix}{text}"


def install_warning_printer(log: logging.Logger | None = None) -> Callable[[], None]:
    """Print Python warnings as one readable line on stderr, not ``file:line: ... source``.

    Args:
        log: log each warning on this logger (WARNING) instead of printing it (the worker,
            whose output is its log).

    Returns:
        A function that restores the previous ``warnings.showwarning``.
    """
    previous = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = _warning_line(message, category)
        if log is not None:
            log.warning("%s", text.removeprefix("warning: "))
        else:
            click.echo(text, err=True)

    warnings.showwarning = show

    def restore() -> None:
        warnings.showwarning = previous

    return restore


def echo_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def fmt_time(ts: float | None) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``, or ``-``."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    """``0.25s``, ``12.3s``, ``2m05s``, or ``-``."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_seconds(seconds)


def parse_seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """Click callback: a duration option (``30s``, ``5m``, ``1h``) in seconds."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _rich_console(stderr: bool = False) -> Any:
    try:
        from rich.console import Console
    except ImportError:
        return None
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "0") or 0) or 160
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


class Table:
    """A table for people: rich when installed, aligned plain text otherwise."""

    def __init__(self, *columns: str, title: str | None = None, caption: str | None = None) -> None:
        self.columns = columns
        self.rows: list[Sequence[str]] = []
        self.title = title
        self.caption = caption

    def add(self, *cells: Any) -> None:
        """Add a row (cells are shown with ``str``)."""
        self.rows.append(["-" if c is None else str(c) for c in cells])

    def print(self) -> None:
        """Print to stdout."""
        console = _rich_console()
        if console is not None:
            from rich.table import Table as RichTable

            table = RichTable(
                title=self.title, caption=self.caption, title_justify="left", caption_justify="left"
            )
            for column in self.columns:
                table.add_column(column, overflow="fold")
            for row in self.rows:
                table.add_row(*row)
            console.print(table)
            return
        if self.title:
            click.echo(self.title)
        widths = [
            max([len(c)] + [len(r[i]) for r in self.rows]) for i, c in enumerate(self.columns)
        ]
        click.echo(
            "  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)).rstrip()
        )
        for row in self.rows:
            click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if self.caption:
            click.echo(self.caption)


@contextmanager
def spinner(text: str) -> Iterator[None]:
    """Show ``text`` with a spinner on stderr while the block runs (only on a terminal)."""
    console = _rich_console(stderr=True)
    if console is None or not sys.stderr.isatty():
        yield
        return
    with console.status(text):
        yield


def progress(total: int, text: str) -> Any:
    """A progress bar on stderr (a no-op object when stderr is not a terminal or without rich)."""
    console = _rich_console(stderr=True)
    if console is None or not sys.stderr.isatty():
        return _NoProgress(total, text)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return _RichProgress(
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ),
        total,
        text,
    )


class _NoProgress:
    def __init__(self, total: int, text: str) -> None:
        self.total, self.text, self.done = total, text, 0

    def __enter__(self) -> _NoProgress:
        if self.total and not sys.stderr.isatty():
            click.echo(f"{self.text}: {self.total} workflow(s)", err=True)
        return self

    def advance(self, label: str = "") -> None:
        self.done += 1
        if label and not sys.stderr.isatty():
            click.echo(f"[{self.done}/{self.total}] {label}", err=True)

    def __exit__(self, *exc: object) -> None:
        return None


class _RichProgress:
    def __init__(self, bar: Any, total: int, text: str) -> None:
        self.bar, self.total, self.text = bar, total, text
        self.task: Any = None

    def __enter__(self) -> _RichProgress:
        self.bar.__enter__()
        self.task = self.bar.add_task(self.text, total=self.total)
        return self

    def advance(self, label: str = "") -> None:
        self.bar.advance(self.task)

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)


BIG_SET = 20
"""Bulk commands show progress from this many workflows on."""


@contextlib.contextmanager
def big_set_progress(total: int, text: str) -> Iterator[Callable[[str], None] | None]:
    """A per-workflow progress callback for a bulk action on a big set (None for a small one)."""
    if total < BIG_SET:
        yield None
        return
    with progress(total, text) as bar:
        lock = threading.Lock()

        def done(workflow_id: str) -> None:
            with lock:  # bulk actions end on several threads
                bar.advance(workflow_id)

        yield done
