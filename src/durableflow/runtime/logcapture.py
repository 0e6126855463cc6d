"""Per-attempt capture of what a task prints and logs, in whatever process runs it.

:func:`~durableflow.runtime.context.task_context` (given the attempt's ``call``) opens an
:class:`AttemptBuffer` for the attempt and makes it current in a context variable of the thread
that runs the function; the buffer is stored by the protocol of :mod:`durableflow.storage.logs`.
Two hooks (:mod:`durableflow.runtime.logcapture_hooks`), installed once per process on the first
captured attempt, send text to the current buffer:

- ``sys.stdout`` and ``sys.stderr`` are wrapped in a router: a write made by a thread inside a
  task goes to that attempt's buffer (and, by default, on to the real stream: ``tee``); any
  other write goes to the real stream untouched. Concurrent tasks of the thread executor never
  mix: each thread has its own current buffer.
- the ``logging`` record factory is wrapped: a record created inside a task (it passed its
  logger's level) is formatted into the buffer, and carries ``durableflow_workflow_id``,
  ``durableflow_task_id`` and ``durableflow_attempt`` attributes for any handler (an
  OpenTelemetry log exporter, a JSON formatter). No handler is added, so ``basicConfig`` and
  Python's last-resort handler behave as without durableflow; a ``StreamHandler`` that writes
  a captured record to the routed stream is not captured twice.

What is not captured: output of threads a task starts itself (they do not inherit the task's
context), writes to file descriptors (``os.write(1, ...)``, subprocesses, C extensions), and
records below their logger's level (the root logger's default is WARNING: configure logging to
capture INFO). A record is captured when it is made, whatever handlers then do with it.

Settings (read when the module loads, so pool and Ray workers inherit them; or
:func:`configure`): ``DURABLEFLOW_TASK_LOGS`` = ``tee`` (default: capture and still print),
``capture`` (capture only) or ``off`` (nothing kept; logging records still carry the ids);
``DURABLEFLOW_TASK_LOG_LIMIT`` = bytes kept per attempt (default 1 MiB, the tail).

This module holds the settings, the attempt's buffer, the thread of the live flushes (step 2
of :mod:`durableflow.storage.logs`) and :func:`begin_capture` / :func:`end_capture`.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
from typing import Any

from durableflow.errors import StorageError
from durableflow.runtime.logcapture_hooks import (
    CAPTURE,
    INSTALL_LOCK,
    RecordFactory,
    current_buffer,
    install,
    installed,
    warn,
)
from durableflow.storage.base import Storage
from durableflow.storage.logs import LogHeader, put_log
from durableflow.storage.urls import open_storage

__all__ = [
    "FLUSH_EVERY",
    "AttemptBuffer",
    "begin_capture",
    "configure",
    "current_buffer",
    "end_capture",
    "settings",
]

log = logging.getLogger("durableflow.task")

FLUSH_EVERY = 1.0
"""Seconds between the live flushes of a running attempt's log (step 2)."""

_MODES = ("tee", "capture", "off")
_DEFAULT_LIMIT = 1 << 20
_HOST = socket.gethostname()


def _env_settings() -> tuple[str, int]:
    mode = os.environ.get("DURABLEFLOW_TASK_LOGS", "tee").strip().lower() or "tee"
    if mode not in _MODES:
        log.warning("DURABLEFLOW_TASK_LOGS=%r is not one of %s: using 'tee'", mode, _MODES)
        mode = "tee"
    raw = os.environ.get("DURABLEFLOW_TASK_LOG_LIMIT", "").strip()
    limit = _DEFAULT_LIMIT
    if raw:
        try:
            limit = int(raw)
            if limit < 1:
                raise ValueError
        except ValueError:
            log.warning("DURABLEFLOW_TASK_LOG_LIMIT=%r is not a positive int: using 1 MiB", raw)
            limit = _DEFAULT_LIMIT
    return mode, limit


class _Settings:
    mode: str
    limit: int

    def __init__(self) -> None:
        self.mode, self.limit = _env_settings()


_SETTINGS = _Settings()


def configure(*, mode: str | None = None, limit: int | None = None) -> None:
    """Change the capture settings of this process (the environment sets them at import).

    Args:
        mode: ``tee`` (capture and print), ``capture`` (capture only) or ``off``.
        limit: bytes of text kept per attempt (its tail).

    Raises:
        ValueError: an unknown mode or a limit below 1.
    """
    if mode is not None:
        if mode not in _MODES:
            raise ValueError(f"task log mode must be one of {_MODES}, got {mode!r}")
        _SETTINGS.mode = mode
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"task log limit must be a positive int (bytes), got {limit!r}")
        _SETTINGS.limit = limit


def settings() -> tuple[str, int]:
    """The current ``(mode, limit)``."""
    return _SETTINGS.mode, _SETTINGS.limit


class AttemptBuffer:
    """The captured text of one attempt: its tail, under ``limit`` bytes once stored."""

    __slots__ = (
        "_lock",
        "attempt",
        "dropped",
        "end",
        "flush_lock",
        "flushed",
        "keep",
        "limit",
        "parts",
        "put",
        "size",
        "start",
        "storage",
        "task_id",
        "tee",
        "workflow_id",
        "written",
    )

    def __init__(
        self,
        storage: Storage | None,
        workflow_id: str,
        task_id: str,
        attempt: int,
        *,
        limit: int,
        tee: bool,
        start: float | None = None,
        keep: bool = True,
    ) -> None:
        self.storage = storage
        self.workflow_id = workflow_id
        self.task_id = task_id
        self.attempt = attempt
        self.limit = limit
        self.tee = tee
        self.keep = keep
        """False with capture off: nothing is kept, records are only tagged with the ids."""
        self.start = time.time() if start is None else start
        self.end: float | None = None
        self.parts: list[str] = []
        self.size = 0
        self.written = 0
        self.dropped = 0
        self.flushed = 0
        """``written`` at the last put."""
        self.put = False
        """Whether a blob of this attempt was put (step 2 or 3)."""
        self._lock = threading.Lock()
        self.flush_lock = threading.Lock()
        """Held by a put, so the last live flush never lands after the final one."""

    def write(self, text: str) -> None:
        """Step 1: keep ``text``; past twice the limit, drop the oldest text down to it."""
        n = len(text)
        if not n or not self.keep:
            return
        with self._lock:
            if not self.written:  # the first text: follow it for the live flushes (step 2)
                _flusher().add(self)
            self.parts.append(text)
            self.size += n
            self.written += n
            if self.size > 2 * self.limit:
                joined = "".join(self.parts)
                cut = len(joined) - self.limit
                self.parts = [joined[cut:]]
                self.dropped += cut
                self.size = self.limit

    def snapshot(self) -> tuple[str, int, int]:
        """``(text, written, dropped)``, the text cut to at most ``limit`` UTF-8 bytes."""
        with self._lock:
            text = "".join(self.parts)
            written, dropped = self.written, self.dropped
        if len(text) > self.limit:
            dropped += len(text) - self.limit
            text = text[-self.limit :]
        data = text.encode("utf-8", "replace")
        if len(data) > self.limit:  # wide characters: cut bytes, at a character boundary
            kept = data[-self.limit :].decode("utf-8", "ignore")
            dropped += len(text) - len(kept)
            text = kept
        return text, written, dropped

    def flush(self, *, final: bool) -> bool:
        """Steps 2 and 3: put the blob if there is something new (or it must be ended).

        Returns:
            True if a blob was put.
        """
        if final:
            self.end = time.time()
            if not self.written and not self.put:
                return False  # an attempt that wrote nothing costs nothing
        elif self.written == self.flushed:
            return False
        if self.storage is None:  # capture off: nothing to store
            return False
        text, written, dropped = self.snapshot()
        header = LogHeader(
            self.task_id,
            self.attempt,
            self.start,
            self.end,
            written,
            dropped,
            _HOST,
            os.getpid(),
        )
        try:
            put_log(self.storage, self.workflow_id, header, text)
        except StorageError as err:  # 4
            warn(f"durableflow: {err} (the attempt goes on)")
            return False
        self.flushed = written
        self.put = True
        return True


# --- the live flushes ----------------------------------------------------------------------


class _Flusher:
    """The thread that puts the logs of long attempts every FLUSH_EVERY seconds (step 2)."""

    def __init__(self) -> None:
        self.live: set[AttemptBuffer] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="durableflow-logs", daemon=True)
        self.thread.start()

    def add(self, buffer: AttemptBuffer) -> None:
        with self.lock:
            self.live.add(buffer)
        if not self.wake.is_set():
            self.wake.set()

    def remove(self, buffer: AttemptBuffer) -> None:
        with self.lock:
            self.live.discard(buffer)

    def _run(self) -> None:
        while True:
            self.wake.wait()
            time.sleep(FLUSH_EVERY)
            with self.lock:
                due = [b for b in self.live if time.time() - b.start >= FLUSH_EVERY]
                if not self.live:
                    self.wake.clear()
            for buffer in due:
                with buffer.flush_lock:
                    if buffer.end is None:
                        buffer.flush(final=False)


_FLUSHERS: dict[int, _Flusher] = {}


def _flusher() -> _Flusher:
    pid = os.getpid()  # a forked child needs a thread of its own
    flusher = _FLUSHERS.get(pid)
    if flusher is None:
        with INSTALL_LOCK:
            flusher = _FLUSHERS.get(pid)
            if flusher is None:
                flusher = _FLUSHERS[pid] = _Flusher()
    return flusher


# --- one attempt ---------------------------------------------------------------------------

_STORAGES: dict[str, Storage] = {}


def _storage_of(call: Any) -> Storage | None:
    """The storage the attempt's log goes to: the call's store, else its URL reopened."""
    store = getattr(call, "store", None)
    if store is not None:
        storage: Storage = store.storage
        return storage
    url = getattr(call, "store_url", None)
    if url is None:
        return None
    opened = _STORAGES.get(url)
    if opened is None:
        with INSTALL_LOCK:
            opened = _STORAGES.get(url)
            if opened is None:
                opened = _STORAGES[url] = open_storage(url)
    return opened


def begin_capture(
    call: Any,
) -> tuple[AttemptBuffer, contextvars.Token[AttemptBuffer | None]] | None:
    """Start capturing the attempt of ``call`` in this thread; None when capture is off.

    ``call`` is the attempt's :class:`~durableflow.model.calls.TaskCall` (its workflow, task,
    attempt number and store).
    """
    mode, limit = _SETTINGS.mode, _SETTINGS.limit
    if mode == "off":  # nothing kept; logging records still carry the attempt's ids
        if not isinstance(logging.getLogRecordFactory(), RecordFactory):
            install()
        ids = (call.workflow_id, call.task_id, int(call.attempt))
        tagger = AttemptBuffer(None, *ids, limit=limit, tee=True, keep=False)
        return tagger, CAPTURE.set(tagger)
    try:
        storage = _storage_of(call)
    except StorageError as err:
        warn(f"durableflow: task {call.task_id!r}: its log is not captured: {err}")
        return None
    if storage is None:
        return None
    if not installed():
        install()
    buffer = AttemptBuffer(
        storage,
        call.workflow_id,
        call.task_id,
        int(call.attempt),
        limit=limit,
        tee=mode == "tee",
    )
    return buffer, CAPTURE.set(buffer)


def end_capture(
    captured: tuple[AttemptBuffer, contextvars.Token[AttemptBuffer | None]],
) -> None:
    """Step 3: stop capturing and put the attempt's final blob (if it wrote anything)."""
    buffer, token = captured
    CAPTURE.reset(token)
    if buffer.written:  # a silent attempt never met the flusher
        _flusher().remove(buffer)
    with buffer.flush_lock:
        buffer.flush(final=True)
