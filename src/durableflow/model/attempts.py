"""Task attempts as stored, and what a task's status is as readers see it.

The worker running an attempt keeps one record per task (key ``attempts/<tid>``): it writes it
when the attempt starts (state RUNNING) and rewrites it when the attempt ends without a
checkpoint (FAILED, ERROR, CONTINUED, or SUCCESSFUL for a ``checkpoint=False`` task). A
checkpoint ends an attempt by itself: its header holds the attempt's number and times.

:func:`observe_task` turns what is stored about one task (checkpoint header, continuation
specs, attempt record, error record) and the workflow's status into a :class:`TaskView`: its
status, attempts and times. It is a pure function, so every rule below is tested with
``assert``:

- SUCCESSFUL: a checkpoint exists (or a ``checkpoint=False`` attempt succeeded);
- CONTINUED: the task returned a continuation that is not finished yet;
- PENDING: no attempt started yet, the workflow may still run it;
- RUNNING: an attempt without an outcome, started by the workflow's current runner;
- RETRYING: a failed attempt that will be retried: while the workflow runs, if the engine said
  so (or, for records that do not say, if ``max_retries`` and ``retry_exceptions`` allow it);
  in a RESUMABLE workflow always, since ``resume`` runs it again. An attempt lost with its
  runner (no outcome, and the workflow is no longer run by the runner that started it) is
  counted and reads RETRYING too;
- FAILED: failed for good;
- CANCELED: the workflow was canceled (or stopped by another task's failure) before the task
  ended; SKIPPED: it never started in a workflow that FAILED, or was not needed by one that
  succeeded; NOT_CHECKPOINTED: a ``checkpoint=False`` task of a SUCCESSFUL workflow that left no
  record.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from typing import Any

from durableflow.model.records import ErrorInfo, TaskErrorRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.model.task import TaskOptions

__all__ = [
    "AttemptRecord",
    "AttemptState",
    "ObservedTaskStatus",
    "TaskView",
    "observe_task",
    "retry_allowed",
]


class AttemptState(str, enum.Enum):
    """Where one attempt stands, as its worker recorded it."""

    RUNNING = "RUNNING"
    """Started; no outcome recorded (still running, or lost with its worker or runner)."""
    SUCCESSFUL = "SUCCESSFUL"
    """Returned a value that is not checkpointed (``checkpoint=False``)."""
    FAILED = "FAILED"
    """The task's function raised (any exception, ``SystemExit`` and the like included)."""
    ERROR = "ERROR"
    """The worker failed around the function: storage, lost inputs (a system error)."""
    CONTINUED = "CONTINUED"
    """Returned a continuation, handed to the engine."""

    def __str__(self) -> str:
        return self.value


class ObservedTaskStatus(str, enum.Enum):
    """A task's status as ``get_metadata`` and ``durableflow show`` report it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    CONTINUED = "CONTINUED"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    SKIPPED = "SKIPPED"
    NOT_CHECKPOINTED = "NOT_CHECKPOINTED"

    def __str__(self) -> str:
        return self.value


PREVIOUS_KEPT = 20
"""How many earlier attempts an attempt record keeps in its history."""


@dataclasses.dataclass(frozen=True)
class AttemptRecord:
    """The latest attempt of one task (key ``attempts/<task_id>``), written by its worker."""

    task_id: str
    """The task."""
    attempt: int
    """The attempt's number, counted from 1 over every run of the workflow."""
    start: float
    """When the worker started it (Unix time, the worker's clock)."""
    host: str
    """The worker's host name."""
    pid: int
    """The worker's process id."""
    state: AttemptState = AttemptState.RUNNING
    """RUNNING until the worker records an outcome."""
    end: float | None = None
    """When it ended, for a recorded outcome."""
    epoch: int | None = None
    """The fencing token of the runner that started it (the run record's ``epoch``): an
    attempt of an older runner is no longer awaited by anyone."""
    error: ErrorInfo | None = None
    """What the function or the worker raised (FAILED, ERROR)."""
    previous: tuple[dict[str, Any], ...] = ()
    """The task's earlier attempts, oldest first, at most :data:`PREVIOUS_KEPT`: JSON objects
    with ``attempt, start, end, state, host, pid`` and ``error`` (a one-line summary or None).
    Kept so a timeline can show every attempt, not only the latest."""

    def ended(
        self, state: AttemptState, end: float, error: ErrorInfo | None = None
    ) -> AttemptRecord:
        """This attempt with its outcome."""
        return dataclasses.replace(self, state=state, end=end, error=error)

    def to_json(self) -> dict[str, Any]:
        """JSON form; fields without a value are left out."""
        data: dict[str, Any] = {
            "task_id": self.task_id,
            "attempt": self.attempt,
            "start": self.start,
            "host": self.host,
            "pid": self.pid,
            "state": self.state.value,
        }
        if self.end is not None:
            data["end"] = self.end
        if self.epoch is not None:
            data["epoch"] = self.epoch
        if self.error is not None:
            data["error"] = self.error.to_json()
        if self.previous:
            data["previous"] = list(self.previous)
        return data

    def summary(self) -> dict[str, Any]:
        """This attempt as an entry of a later attempt's :attr:`previous`."""
        error = None
        if self.error is not None:
            error = (self.error.summary().splitlines() or [""])[0][:500]
        return {
            "attempt": self.attempt,
            "start": self.start,
            "end": self.end,
            "state": self.state.value,
            "host": self.host,
            "pid": self.pid,
            "error": error,
        }

    def after(self, stored: AttemptRecord | None) -> AttemptRecord:
        """This record as it replaces ``stored``.

        The history is carried over, with ``stored`` added when it was an earlier attempt (at
        most :data:`PREVIOUS_KEPT` kept).
        """
        if stored is None:
            return self
        history = stored.previous
        if stored.attempt < self.attempt:
            history = (*history, stored.summary())[-PREVIOUS_KEPT:]
        if history == self.previous:
            return self
        return dataclasses.replace(self, previous=history)

    def to_bytes(self) -> bytes:
        """JSON bytes."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: Any) -> AttemptRecord:
        """Read the JSON form; raises ValueError, KeyError or TypeError if malformed."""
        if not isinstance(data, dict):
            raise ValueError("attempt record is not a JSON object")
        end, epoch, error = data.get("end"), data.get("epoch"), data.get("error")
        return cls(
            task_id=str(data["task_id"]),
            attempt=int(data["attempt"]),
            start=float(data["start"]),
            host=str(data.get("host", "")),
            pid=int(data.get("pid", 0)),
            state=AttemptState(data.get("state", "RUNNING")),
            end=None if end is None else float(end),
            epoch=None if epoch is None else int(epoch),
            error=ErrorInfo.from_json(error) if isinstance(error, dict) else None,
            previous=tuple(
                dict(entry) for entry in data.get("previous") or () if isinstance(entry, dict)
            ),
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> AttemptRecord:
        """Parse JSON bytes; raises ValueError, KeyError or TypeError if malformed."""
        return cls.from_json(json.loads(raw))


@dataclasses.dataclass(frozen=True)
class TaskView:
    """What readers are told about one task."""

    status: ObservedTaskStatus
    attempts: int
    """Attempts made, lost ones included (0: never started)."""
    start_time: float | None
    """Start of the latest attempt (of the one that succeeded, for a SUCCESSFUL task)."""
    end_time: float | None
    """Its end; None while it runs or when it was lost."""
    error: ErrorInfo | None
    """The latest failure, if the latest attempt failed (or was lost)."""
    last_attempt: AttemptRecord | None
    """The latest attempt record, if any."""
    lost: bool = False
    """The latest attempt has no outcome and nobody waits for it: its worker or runner was
    lost (a crash); it counts in ``attempts``."""
    history: tuple[dict[str, Any], ...] = ()
    """Earlier attempts known from the attempt record, oldest first (the entries of
    :attr:`AttemptRecord.previous`): kept when the record itself is older than the latest
    attempt (a last attempt too short to write one), so readers never lose them."""

    @property
    def duration(self) -> float | None:
        """``end_time - start_time`` when both are known."""
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


def retry_allowed(options: TaskOptions, attempts: int, error_type: str, system: bool) -> bool:
    """Whether ``options`` allow another attempt after ``attempts`` failed ones.

    The rule of :func:`durableflow.core.retry.on_failure`, for readers that have the error's
    qualified type name instead of the exception: a subclass listed in ``retry_exceptions`` is
    recognised when its module is imported in this process, else only the exact type.
    """
    if options.max_retries >= 0 and attempts > options.max_retries:
        return False
    policy = options.retry_exceptions
    if system or policy is True:
        return True
    if not isinstance(policy, tuple):
        return False
    names = {f"{kind.__module__}.{kind.__qualname__}" for kind in policy}
    if error_type in names:
        return True
    kind = _imported_class(error_type)
    return kind is not None and issubclass(kind, policy)


def _imported_class(qualified: str) -> type | None:
    module_name, _, qualname = qualified.rpartition(".")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found if isinstance(found, type) else None


def observe_task(
    *,
    workflow: WorkflowStatus,
    epoch: int | None,
    options: TaskOptions | None,
    header: dict[str, Any] | None,
    continued: bool,
    attempt: AttemptRecord | None,
    error: TaskErrorRecord | None,
    continuation: dict[str, Any] | None = None,
) -> TaskView:
    """What one task is, from what is stored about it (rules in the module docstring).

    Args:
        workflow: the workflow's effective status (RESUMABLE if its runner is gone).
        epoch: the run record's fencing token (the current runner's), if known.
        options: the task's options (None if its spec cannot be loaded).
        header: its checkpoint's header, if it has a checkpoint.
        continued: the specs of a continuation it returned are stored.
        attempt: its attempt record.
        error: its error record (the engine's record of its latest failed attempt).
        continuation: the header of its stored continuation's specs, where the engine may
            record the attempt that returned it (``start``, ``end``, ``attempt``) in place of
            the worker's attempt record.
    """
    header = header or {}
    cont = continuation or {}
    attempts = max(
        int(header.get("attempt") or 0),
        int(cont.get("attempt") or 0),
        attempt.attempt if attempt else 0,
        error.attempts if error else 0,
    )
    history = attempt.previous if attempt is not None else ()
    if attempt is not None and attempt.attempt < attempts:
        history = (*attempt.previous, attempt.summary())  # it stays part of the history
        attempt = None  # an older attempt's record: the checkpoint or error record is newer
    if error is not None and error.attempts < attempts:
        error = None  # about an earlier attempt
    start = attempt.start if attempt else cont.get("start")
    end = attempt.end if attempt else cont.get("end")
    failed = error is not None or (attempt is not None and attempt.state in _FAILED)
    failure = error.error if error else attempt.error if attempt else None
    if error is not None and end is None:
        end = error.time  # the worker died: the engine saw the attempt end

    def view(status: ObservedTaskStatus, *, lost: bool = False) -> TaskView:
        shown = failure if failed else None
        return TaskView(status, attempts, start, end, shown, attempt, lost, history)

    if header:
        if "start" in header:  # written by the worker: the successful attempt's own times
            start, end = header["start"], header.get("end")
        elif end is None:  # written by the engine (a caught error, a finished continuation)
            end = header.get("end")
        return view(ObservedTaskStatus.SUCCESSFUL)
    if continued or cont:
        return view(ObservedTaskStatus.CONTINUED)
    if attempt is None and not failed:
        return view(_never_started(workflow, options))
    if attempt is not None and attempt.state is AttemptState.SUCCESSFUL:
        return view(ObservedTaskStatus.SUCCESSFUL)
    if attempt is not None and not failed:
        # Started, no outcome yet (or a continuation the engine has not stored yet).
        if workflow in ACTIVE and (attempt.epoch is None or epoch in (None, attempt.epoch)):
            return view(ObservedTaskStatus.RUNNING)
        if workflow in ACTIVE or workflow is WorkflowStatus.RESUMABLE:
            return view(ObservedTaskStatus.RETRYING, lost=True)
        if workflow is WorkflowStatus.SUCCESSFUL and options is not None and not options.checkpoint:
            return view(ObservedTaskStatus.NOT_CHECKPOINTED)
        return view(ObservedTaskStatus.CANCELED, lost=True)
    if workflow is WorkflowStatus.RESUMABLE:
        return view(ObservedTaskStatus.RETRYING)
    if workflow in ACTIVE and _will_retry(options, attempts, attempt, error, failure):
        return view(ObservedTaskStatus.RETRYING)
    if workflow is WorkflowStatus.CANCELED and _will_retry(
        options, attempts, attempt, error, failure
    ):
        return view(ObservedTaskStatus.CANCELED)
    return view(ObservedTaskStatus.FAILED)


_FAILED = (AttemptState.FAILED, AttemptState.ERROR)


def _never_started(workflow: WorkflowStatus, options: TaskOptions | None) -> ObservedTaskStatus:
    if workflow is WorkflowStatus.CANCELED:
        return ObservedTaskStatus.CANCELED
    if workflow is WorkflowStatus.FAILED:
        return ObservedTaskStatus.SKIPPED
    if workflow is WorkflowStatus.SUCCESSFUL:
        if options is not None and not options.checkpoint:
            return ObservedTaskStatus.NOT_CHECKPOINTED
        return ObservedTaskStatus.SKIPPED
    return ObservedTaskStatus.PENDING


def _will_retry(
    options: TaskOptions | None,
    attempts: int,
    attempt: AttemptRecord | None,
    error: TaskErrorRecord | None,
    failure: ErrorInfo | None,
) -> bool:
    """Whether the engine retries the failed latest attempt (it says so in newer records)."""
    if error is not None and error.attempts == attempts:
        final = getattr(error, "final", None)
        if isinstance(final, bool):
            return not final
    if options is None or failure is None:
        return False
    # A worker that died records nothing: the engine's record alone means a system error.
    system = attempt is None or attempt.state is not AttemptState.FAILED
    return retry_allowed(options, attempts, failure.type, system)
