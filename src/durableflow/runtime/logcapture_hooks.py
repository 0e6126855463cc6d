"""The two process-wide hooks of task log capture, and the current attempt's buffer.

Part of :mod:`durableflow.runtime.logcapture` (which installs them on the first captured
attempt of a process, and documents what is and is not captured):

- :class:`Router` wraps ``sys.stdout`` and ``sys.stderr``: a write made by a thread inside a
  task goes to that attempt's buffer (and on to the real stream when the buffer tees); any
  other write goes to the real stream untouched;
- :class:`RecordFactory` wraps the ``logging`` record factory: a record made inside a task is
  tagged with the attempt's ids and formatted into its buffer.

The current buffer lives in the context variable ``CAPTURE`` of the thread that runs the task.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from durableflow.runtime.logcapture import AttemptBuffer

__all__ = [
    "CAPTURE",
    "INSTALL_LOCK",
    "RecordFactory",
    "Router",
    "current_buffer",
    "install",
    "installed",
    "warn",
]

CAPTURE: contextvars.ContextVar[AttemptBuffer | None] = contextvars.ContextVar(
    "durableflow_log_capture", default=None
)

INSTALL_LOCK = threading.Lock()
"""Guards the installation of the hooks and the process's flusher and storages."""


def current_buffer() -> AttemptBuffer | None:
    """The buffer of the attempt this thread runs, or None."""
    return CAPTURE.get()


def warn(message: str) -> None:
    """Say something on the real stderr, never into a task's log."""
    stream = sys.stderr
    real = stream._real if isinstance(stream, Router) else stream
    if real is not None:
        with contextlib.suppress(OSError, ValueError):  # no stderr left: say nothing
            real.write(message + "\n")


def _handler_codes() -> frozenset[Any]:
    """Code objects of the stream handlers' ``emit``: their writes are records, captured as such."""
    return frozenset({logging.StreamHandler.emit.__code__})


_HANDLER_CODES = _handler_codes()


class Router:
    """``sys.stdout`` or ``sys.stderr``: a task thread's writes to its buffer, others through."""

    def __init__(self, real: TextIO) -> None:
        self._real = real

    def write(self, text: str) -> int:
        """Write ``text`` to the current attempt's buffer (and the real stream), else through."""
        buffer = CAPTURE.get()
        if buffer is None or sys._getframe(1).f_code in _HANDLER_CODES:
            return self._real.write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        buffer.write(text)
        if buffer.tee:
            self._real.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each line (see :meth:`write`)."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the real stream."""
        self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __repr__(self) -> str:
        return f"<durableflow task log router over {self._real!r}>"


_FORMATTER = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


_MAKING = threading.local()
"""``active`` while one of our record factories makes a record in this thread."""


class RecordFactory:
    """Wraps the logging record factory: records made inside a task are tagged and captured."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        """Make the record; inside a task, tag it with the attempt's ids and capture it."""
        buffer = CAPTURE.get()
        if buffer is None or getattr(_MAKING, "active", False):
            # Outside tasks; or inside another of ours: a factory installed over ours (an
            # instrumentation) made us wrap it again, and the outermost one captures.
            made: logging.LogRecord = self.previous(*args, **kwargs)
            return made
        _MAKING.active = True
        try:
            record: logging.LogRecord = self.previous(*args, **kwargs)
        finally:
            _MAKING.active = False
        if buffer is not None:
            record.durableflow_workflow_id = buffer.workflow_id
            record.durableflow_task_id = buffer.task_id
            record.durableflow_attempt = buffer.attempt
            if not buffer.keep:
                return record
            try:
                line = _FORMATTER.format(record)
            except Exception:  # a bad format string: keep what can be kept, as logging would
                line = f"{record.levelname} {record.name}: {record.msg!r} {record.args!r}"
            buffer.write(line + "\n")
        return record


def install() -> None:
    """Put the routers and the record factory in place (again, if something replaced them)."""
    with INSTALL_LOCK:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, Router):
                setattr(sys, name, Router(stream))
        if not isinstance(logging.getLogRecordFactory(), RecordFactory):
            logging.setLogRecordFactory(RecordFactory(logging.getLogRecordFactory()))


def installed() -> bool:
    """Whether both routers and the record factory are in place."""
    return (
        isinstance(sys.stdout, Router)
        and isinstance(sys.stderr, Router)
        and isinstance(logging.getLogRecordFactory(), RecordFactory)
    )
