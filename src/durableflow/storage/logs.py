"""Task logs: what each attempt of a task wrote to stdout/stderr and logged, one blob per attempt.

Key ``logs/<attempt>/<task_id>`` of the workflow (:func:`log_key`), next to its attempt records
(the key functions live here until :mod:`durableflow.storage.layout` takes them in). The
attempt number comes first so that file storage makes a few folders (one per attempt number),
not one per task: a new folder costs about as much as the file itself. A blob is
one JSON header line (:class:`LogHeader`) and the captured text, UTF-8, after it. Protocol of one
attempt's log, run by the capture of :mod:`durableflow.runtime.logcapture` in the process that
runs the attempt (the driver's thread, a pool process, a Ray worker):

1. the attempt's text is kept in memory, its tail only: past the cap (1 MiB by default) the
   oldest text is dropped, and the header counts what was dropped;
2. while the attempt runs, every ``FLUSH_EVERY`` seconds, if it wrote anything new, the blob is
   put with ``end`` null (a live log, for ``durableflow logs --follow``);
3. when the attempt ends (before its checkpoint or attempt record is written) the blob is put
   with ``end`` set, if the attempt wrote anything or step 2 put a blob; an attempt that wrote
   nothing costs no write at all;
4. a failed put is logged (to the real stderr, never into a log) and the attempt goes on: a log
   is for reading, never for what runs.

Every put is without sync (:meth:`Storage.volatile`): a power cut may lose the end of a log, a
killed process leaves the last blob of step 2 (``end`` null, the attempt lost). An attempt
number a later run reuses (a run that crashed before it recorded the attempt) overwrites that
attempt's blob.

Restart, fork, delete: an in-place restart sets the logs of the tasks it runs again aside with
their attempt records (``history/<n>/logs/...``, read with ``restart=n``; step 4 of
:mod:`durableflow.runtime.restart` lists them), since their attempts are numbered from 1
again; a fork starts with no logs (the source keeps its own). Deleting the workflow deletes its
logs (everything under its folder goes, see
:meth:`~durableflow.storage.status_index.StatusIndex.delete_workflow`); a blob put by an
attempt still running after its workflow was deleted is a leftover that the next use of the
id clears (:meth:`~durableflow.storage.status_index.StatusIndex.clear_leftovers`). Logs are
neither sealed nor signed: they are text for people, never unpickled.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from durableflow.errors import StorageError
from durableflow.storage import layout
from durableflow.storage.base import Storage

__all__ = [
    "LogHeader",
    "decode_log",
    "encode_log",
    "list_logs",
    "log_key",
    "logs_prefix",
    "put_log",
    "read_log",
]


def logs_prefix(workflow_id: str, *, restart: int | None = None) -> str:
    """Prefix of the workflow's logs (``restart``: those that restart set aside)."""
    if restart is None:
        return f"{layout.workflow_prefix(workflow_id)}logs/"
    return layout.history_key(workflow_id, restart, "logs/")


def log_key(workflow_id: str, task_id: str, attempt: int, *, restart: int | None = None) -> str:
    """The log of one attempt of a task (``restart``: as that restart set it aside)."""
    return f"{logs_prefix(workflow_id, restart=restart)}{attempt}/{task_id}"


@dataclasses.dataclass(frozen=True)
class LogHeader:
    """What a log blob says about its text (the JSON line before it)."""

    task_id: str
    attempt: int
    start: float
    """When the attempt started (Unix time)."""
    end: float | None
    """When it ended; None while it runs (or if it was lost while running)."""
    written: int
    """Characters the attempt wrote in all, the dropped ones included."""
    dropped: int
    """Characters dropped from the head to keep the log under its cap."""
    host: str = ""
    pid: int = 0


def encode_log(header: LogHeader, text: str) -> bytes:
    """The stored form: the header as one JSON line, then the text."""
    head = json.dumps(dataclasses.asdict(header), separators=(",", ":"))
    return head.encode() + b"\n" + text.encode("utf-8", "replace")


def decode_log(raw: bytes) -> tuple[LogHeader, str]:
    """The header and text of a stored blob.

    Raises:
        ValueError: the blob is not a log (no header line, or a garbled one).
    """
    head, sep, body = raw.partition(b"\n")
    if not sep:
        raise ValueError("a task log blob has no header line")
    try:
        fields: dict[str, Any] = json.loads(head)
        header = LogHeader(
            task_id=str(fields["task_id"]),
            attempt=int(fields["attempt"]),
            start=float(fields["start"]),
            end=None if fields.get("end") is None else float(fields["end"]),
            written=int(fields["written"]),
            dropped=int(fields["dropped"]),
            host=str(fields.get("host", "")),
            pid=int(fields.get("pid", 0)),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"a task log blob has a garbled header: {err}") from err
    return header, body.decode("utf-8", "replace")


def put_log(storage: Storage, workflow_id: str, header: LogHeader, text: str) -> None:
    """Steps 2 and 3: put one attempt's blob, without sync.

    Raises:
        StorageError: the storage failed (tagged with the workflow and task).
    """
    key = log_key(workflow_id, header.task_id, header.attempt)
    try:
        with storage.volatile():
            storage.put(key, encode_log(header, text))
    except StorageError as err:
        raise type(err)(
            f"workflow {workflow_id!r}: the log of task {header.task_id!r} attempt "
            f"{header.attempt}: {err}",
            workflow_id=workflow_id,
            task_id=header.task_id,
            key=key,
        ) from err


def list_logs(
    storage: Storage,
    workflow_id: str,
    task_id: str | None = None,
    *,
    restart: int | None = None,
) -> list[tuple[str, int]]:
    """``(task_id, attempt)`` of every stored log of the workflow (or task), in order.

    One listing of all the workflow's logs (also for one task); keys that are not
    ``<number>/<task>`` are skipped.
    """
    base = logs_prefix(workflow_id, restart=restart)
    found = []
    for key in storage.list(base):
        number, sep, task = key[len(base) :].partition("/")
        if sep and task and number.isdigit() and (task_id is None or task == task_id):
            found.append((task, int(number)))
    found.sort()
    return found


def read_log(
    storage: Storage, workflow_id: str, task_id: str, attempt: int, *, restart: int | None = None
) -> tuple[LogHeader, str] | None:
    """One attempt's header and text; None if there is none (or it is garbled)."""
    raw = storage.get(log_key(workflow_id, task_id, attempt, restart=restart))
    if raw is None:
        return None
    try:
        return decode_log(raw)
    except ValueError:
        return None  # for display only: a garbled log hides nothing else
