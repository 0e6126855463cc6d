"""Attempt records: their JSON form, the status rules, the write protocol step by step, and the
worker's handling of BaseException, SIGINT and errors that do not pickle."""

from __future__ import annotations

import os
import pickle
import signal
import time
from typing import Any

import pytest

from durableflow import workflow
from durableflow.errors import StorageUnavailableError, WorkflowError
from durableflow.model.attempts import (
    AttemptRecord,
    AttemptState,
    ObservedTaskStatus,
    observe_task,
    retry_allowed,
)
from durableflow.model.calls import TaskCall, TaskOutcome
from durableflow.model.dag import TaskRef
from durableflow.model.records import ErrorInfo, TaskErrorRecord
from durableflow.model.status import WorkflowStatus
from durableflow.model.task import TaskOptions
from durableflow.runtime import attempt as worker
from durableflow.runtime.attempt import execute_task
from durableflow.storage import attempts, layout
from durableflow.storage.memory import MemoryStorage
from durableflow.storage.store import WorkflowStore
from durableflow.testing.faults import FaultyStorage
from helpers import wait_until

S = ObservedTaskStatus
W = WorkflowStatus
BOOM = ErrorInfo("builtins.ValueError", "boom")


def record(
    attempt: int = 1, state: AttemptState = AttemptState.RUNNING, **kw: Any
) -> AttemptRecord:
    fields: dict[str, Any] = {"start": 10.0, "host": "h", "pid": 7, "epoch": 1, **kw}
    return AttemptRecord("t", attempt, state=state, **fields)


def error(attempts: int = 1, **kw: Any) -> TaskErrorRecord:
    return TaskErrorRecord("t", attempts, BOOM, 12.0, **kw)


@workflow.task
def double(x: int) -> int:
    return 2 * x


def observe(status: WorkflowStatus = W.RUNNING, **kw: Any) -> Any:
    fields: dict[str, Any] = {
        "epoch": 1,
        "options": TaskOptions(),
        "header": None,
        "continued": False,
        "attempt": None,
        "error": None,
        **kw,
    }
    return observe_task(workflow=status, **fields)


# --- the record ---------------------------------------------------------------------------------
def test_attempt_record_round_trips_through_json_and_leaves_out_absent_fields():
    running = record()
    assert AttemptRecord.from_bytes(running.to_bytes()) == running
    assert set(running.to_json()) == {
        "task_id",
        "attempt",
        "start",
        "host",
        "pid",
        "state",
        "epoch",
    }
    ended = running.ended(AttemptState.FAILED, 11.0, BOOM)
    assert AttemptRecord.from_bytes(ended.to_bytes()) == ended
    assert ended.to_json()["error"]["type"] == "builtins.ValueError"
    for garbled in (b"[]", b"{}", b'{"task_id": "t"}', b"not json"):
        with pytest.raises((ValueError, KeyError, TypeError)):
            AttemptRecord.from_bytes(garbled)


# --- the status rules ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("workflow", "kw", "status", "attempts"),
    [
        (W.RUNNING, {}, S.PENDING, 0),
        (W.RESUMABLE, {}, S.PENDING, 0),
        (W.CANCELED, {}, S.CANCELED, 0),
        (W.FAILED, {}, S.SKIPPED, 0),
        (W.SUCCESSFUL, {"options": TaskOptions(checkpoint=False)}, S.NOT_CHECKPOINTED, 0),
        (W.RUNNING, {"attempt": record()}, S.RUNNING, 1),
        (W.PENDING, {"attempt": record()}, S.RUNNING, 1),
        # an attempt of an earlier runner (a crash), or of a runner that is gone: lost
        (W.RUNNING, {"attempt": record(epoch=0)}, S.RETRYING, 1),
        (W.RESUMABLE, {"attempt": record()}, S.RETRYING, 1),
        (W.CANCELED, {"attempt": record()}, S.CANCELED, 1),
        (W.FAILED, {"attempt": record()}, S.CANCELED, 1),
        # failed attempts: retried while retries are left, and always after a crash
        (W.RUNNING, {"attempt": record(state=AttemptState.ERROR, error=BOOM)}, S.RETRYING, 1),
        (W.RUNNING, {"attempt": record(state=AttemptState.FAILED, error=BOOM)}, S.FAILED, 1),
        (W.RUNNING, {"error": error()}, S.RETRYING, 1),  # the worker died: a system error
        (W.RUNNING, {"error": error(4)}, S.FAILED, 4),  # max_retries 3 used up
        (W.RESUMABLE, {"error": error(4)}, S.RETRYING, 4),
        (W.FAILED, {"error": error()}, S.FAILED, 1),
        (W.CANCELED, {"error": error()}, S.CANCELED, 1),
        (W.CANCELED, {"error": error(4)}, S.FAILED, 4),
        # a newer attempt runs after a failed one
        (W.RUNNING, {"attempt": record(2), "error": error(1)}, S.RUNNING, 2),
        (W.RUNNING, {"header": {"start": 1.0, "end": 2.0, "attempt": 3}}, S.SUCCESSFUL, 3),
        (W.RUNNING, {"continued": True, "attempt": record()}, S.CONTINUED, 1),
        (W.RUNNING, {"attempt": record(state=AttemptState.SUCCESSFUL)}, S.SUCCESSFUL, 1),
    ],
)
def test_observed_status_and_attempts(workflow, kw, status, attempts):
    view = observe(workflow, **kw)
    assert (view.status, view.attempts) == (status, attempts)


def test_the_engine_says_whether_a_failure_is_final_when_its_record_carries_it():
    assert observe(error=error()).status is S.RETRYING  # no flag: max_retries decides
    view = observe(error=TaskErrorRecord("t", 1, BOOM, 12.0, final=True))
    assert view.status is S.FAILED


def test_times_come_from_the_attempt_that_the_status_is_about():
    failed = observe(W.FAILED, attempt=record(), error=error())
    assert (failed.start_time, failed.end_time, failed.error) == (10.0, 12.0, BOOM)
    continued = record(state=AttemptState.CONTINUED, end=11.0)
    forward = {"end": 20.0, "forward": "child"}  # written by the engine when the child ended
    done = observe(W.SUCCESSFUL, header=forward, attempt=continued)
    assert (done.status, done.attempts, done.start_time, done.end_time) == (S.SUCCESSFUL, 1, 10, 11)
    header = {"start": 30.0, "end": 31.0, "attempt": 2}
    ok = observe(W.SUCCESSFUL, header=header, attempt=record(1), error=error(1))
    assert (ok.start_time, ok.end_time, ok.error, ok.last_attempt) == (30.0, 31.0, None, None)
    lost = observe(W.RESUMABLE, attempt=record())
    assert lost.lost and (lost.start_time, lost.end_time, lost.duration) == (10.0, None, None)


def test_an_attempt_record_older_than_the_latest_attempt_stays_in_the_history():
    first = record(1, AttemptState.FAILED, end=11.0, error=BOOM).summary()
    second = record(2, AttemptState.FAILED, end=13.0, error=BOOM, previous=(first,))
    # Attempt 3 succeeded too fast to write a record: its checkpoint header says so.
    header = {"start": 20.0, "end": 20.01, "attempt": 3}
    done = observe(W.SUCCESSFUL, header=header, attempt=second)
    assert (done.status, done.attempts, done.last_attempt) == (S.SUCCESSFUL, 3, None)
    assert [entry["attempt"] for entry in done.history] == [1, 2]
    assert done.history[1] == second.summary()
    # The latest record kept: its own earlier attempts are the history.
    running = observe(W.RUNNING, attempt=record(3, previous=(first, second.summary())))
    assert running.last_attempt is not None and running.last_attempt.attempt == 3
    assert [entry["attempt"] for entry in running.history] == [1, 2]
    assert observe(W.RUNNING).history == ()


def test_a_continuation_header_gives_the_parent_its_attempt_when_no_record_does():
    own = {"tasks": 1, "start": 5.0, "end": 6.0, "attempt": 2}
    running = observe(W.RUNNING, continuation=own)
    assert (running.status, running.attempts, running.start_time, running.end_time) == (
        S.CONTINUED,
        2,
        5.0,
        6.0,
    )
    done = observe(W.SUCCESSFUL, header={"end": 9.0, "forward": "c"}, continuation=own)
    assert (done.status, done.attempts, done.start_time, done.end_time) == (S.SUCCESSFUL, 2, 5, 6)


def test_retry_allowed_follows_max_retries_and_retry_exceptions():
    opts = TaskOptions(max_retries=2, retry_exceptions=(LookupError,))
    assert retry_allowed(opts, 2, "builtins.KeyError", system=False)  # subclass, imported
    assert retry_allowed(opts, 2, "builtins.LookupError", system=False)
    assert not retry_allowed(opts, 2, "builtins.ValueError", system=False)
    assert not retry_allowed(opts, 2, "nowhere.Missing", system=False)
    assert retry_allowed(opts, 2, "builtins.ValueError", system=True)
    assert not retry_allowed(opts, 3, "builtins.KeyError", system=True)
    assert retry_allowed(TaskOptions(max_retries=-1), 100, "x.Y", system=True)
    assert retry_allowed(TaskOptions(retry_exceptions=True), 1, "x.Y", system=False)


# --- the write protocol -------------------------------------------------------------------------
@pytest.fixture
def store() -> WorkflowStore:
    return WorkflowStore(MemoryStorage())


def stored(store: WorkflowStore, task_id: str = "t") -> AttemptRecord | None:
    return attempts.read_attempt(store, "w", task_id)


def test_write_attempt_creates_replaces_and_never_hides_a_newer_attempt(store):
    assert attempts.write_attempt(store, "w", record(2))
    assert attempts.write_attempt(store, "w", record(2, AttemptState.FAILED, error=BOOM))
    assert stored(store) == record(2, AttemptState.FAILED, error=BOOM)
    assert not attempts.write_attempt(store, "w", record(1, AttemptState.FAILED))  # a late one
    assert stored(store).attempt == 2
    store.storage.put(layout.attempt_key("w", "t"), b"garbled")
    assert stored(store) is None
    assert attempts.write_attempt(store, "w", record(1))
    assert stored(store) == record(1)


def test_a_later_attempt_keeps_the_earlier_ones_in_its_history(store):
    """Every attempt's times stay readable (a timeline draws one bar per attempt)."""
    assert attempts.write_attempt(store, "w", record(1))
    assert attempts.write_attempt(store, "w", record(1, AttemptState.FAILED, error=BOOM))
    assert attempts.write_attempt(store, "w", record(2))
    second = stored(store)
    assert [p["attempt"] for p in second.previous] == [1]
    assert second.previous[0]["state"] == "FAILED"
    assert second.previous[0]["error"].startswith("ValueError")
    assert attempts.write_attempt(store, "w", record(2, AttemptState.FAILED, error=BOOM))
    assert [p["attempt"] for p in stored(store).previous] == [1]  # the same attempt: kept once
    for n in range(3, 30):
        assert attempts.write_attempt(store, "w", record(n, AttemptState.FAILED, error=BOOM))
    history = stored(store).previous
    assert [p["attempt"] for p in history] == list(range(9, 29))  # the 20 latest, oldest first
    assert AttemptRecord.from_bytes(stored(store).to_bytes()) == stored(store)


def call(store: WorkflowStore, func: Any, *args: Any, **kw: Any) -> TaskCall:
    fields: dict[str, Any] = {"checkpoint": True, "catch": False, "store": store, "epoch": 5}
    fields.update(kw)
    return TaskCall("w", "t", 1, func, args, {}, {}, **fields)


def test_step_1_a_short_attempt_writes_no_attempt_record(store, monkeypatch):
    monkeypatch.setattr(attempts, "RECORD_AFTER", 60.0)
    assert execute_task(call(store, abs, -3)).value == 3
    assert stored(store) is None
    assert store.read_output_header("w", "t")["attempt"] == 1  # step 3: the checkpoint says it


def test_step_1_the_recorder_writes_running_once_the_attempt_has_run_long_enough(
    store, monkeypatch
):
    monkeypatch.setattr(attempts, "RECORD_AFTER", 0.01)
    seen: list[AttemptRecord | None] = []

    def slow() -> int:
        seen.append(wait_until(lambda: stored(store)))
        return 1

    execute_task(call(store, slow))
    (running,) = seen
    assert (running.state, running.attempt, running.epoch) == (AttemptState.RUNNING, 1, 5)
    assert (running.pid, running.host) == (os.getpid(), attempts.HOST)
    assert stored(store) == running  # step 3: the checkpoint ends it, nothing more written


def test_step_1_a_failing_write_leaves_the_attempt_running(store, monkeypatch, caplog):
    monkeypatch.setattr(attempts, "RECORD_AFTER", 0)
    faulty = WorkflowStore(FaultyStorage(store.storage, "create", key="/attempts/", error=True))
    assert execute_task(call(faulty, abs, -3)).value == 3
    assert "the start of attempt 1 was not recorded" in caplog.text


@pytest.mark.parametrize("delay", [0, 60.0], ids=["recorded", "short"])
def test_step_4_each_outcome_without_a_checkpoint_is_recorded(store, monkeypatch, delay):
    monkeypatch.setattr(attempts, "RECORD_AFTER", delay)

    def fails() -> int:
        raise ValueError("boom")

    outcome = execute_task(call(store, fails))
    ended = stored(store)
    assert outcome.kind == "error" and not outcome.system
    assert (ended.state, ended.error.summary()) == (AttemptState.FAILED, "ValueError: boom")
    assert ended.start == outcome.start and ended.end >= ended.start
    assert (
        outcome.error_info.summary() == "ValueError: boom"
        and "fails" in outcome.error_info.traceback
    )

    def continues() -> Any:
        return workflow.continuation(double.bind(1))

    assert execute_task(call(store, continues)).kind == "continuation"
    assert stored(store).state is AttemptState.CONTINUED

    execute_task(call(store, abs, -1, checkpoint=False))
    # SUCCESSFUL without a checkpoint is written only over a record of step 1
    assert stored(store).state is (
        AttemptState.SUCCESSFUL if delay == 0 else AttemptState.CONTINUED
    )


def test_step_4_a_failing_write_is_logged_and_the_outcome_returned(store, monkeypatch, caplog):
    monkeypatch.setattr(attempts, "RECORD_AFTER", 0)
    faulty = WorkflowStore(FaultyStorage(store.storage, "swap", key="/attempts/", error=True))

    def fails() -> int:
        raise ValueError("boom")

    outcome = execute_task(call(faulty, fails))
    assert outcome.kind == "error" and isinstance(outcome.error, ValueError)
    assert "the end of attempt 1 was not recorded" in caplog.text
    assert stored(store).state is AttemptState.RUNNING


def test_a_storage_error_around_the_function_is_recorded_as_error(store, monkeypatch):
    monkeypatch.setattr(attempts, "RECORD_AFTER", 60.0)
    outcome = execute_task(call(store, abs, TaskRef("missing-upstream")))
    assert outcome.kind == "error" and outcome.system
    assert stored(store).state is AttemptState.ERROR


def test_read_attempt_counts_skips_finished_tasks_and_counts_lost_workers(store):
    for task_id, number in (("done", 1), ("lost", 2), ("failed", 1)):
        attempts.write_attempt(store, "w", AttemptRecord(task_id, number, 1.0, "h", 1))
    store.write_output("w", "done", 1, {"attempt": 1})
    # the worker of attempt 3 died before it wrote anything: only the engine's record says so
    store.write_task_error("w", TaskErrorRecord("failed", 3, BOOM, 1.0))
    store.write_task_error("w", TaskErrorRecord("silent", 1, BOOM, 1.0))
    assert attempts.read_attempt_counts(store, "w") == {"lost": 2, "failed": 3, "silent": 1}
    assert attempts.read_attempt_counts(store, "w", done=["done", "lost"]) == {
        "failed": 3,
        "silent": 1,
    }


# --- BaseException, SIGINT, errors that do not pickle ---------------------------------------------
@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_a_base_exception_raised_by_the_task_is_its_failure(store, kind):
    def raises() -> int:
        raise kind("from the code")

    outcome = execute_task(call(store, raises))  # the main thread, where SIGINT is watched
    assert outcome.kind == "error" and not outcome.system and isinstance(outcome.error, kind)
    assert stored(store) is None or stored(store).state is AttemptState.FAILED


def test_a_keyboard_interrupt_sent_by_sigint_propagates(store, monkeypatch):
    monkeypatch.setattr(worker, "_SIGINT_PID", [0])  # install the counting handler afresh
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupted() -> int:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler raises before this ends
        return 1

    try:
        with pytest.raises(KeyboardInterrupt):
            execute_task(call(store, interrupted))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not store.has_output("w", "t")


def test_an_outcome_carries_its_error_across_processes_or_a_described_stand_in():
    class Local(Exception):
        pass

    info = ErrorInfo.from_exception(Local("x"), "t")
    trip = pickle.loads(
        pickle.dumps(TaskOutcome("t", 1, "error", error=Local("x"), error_info=info))
    )
    assert type(trip.error).__name__ == "Local" and str(trip.error) == "x"
    assert trip.error_info == info

    class Unpicklable(Exception):
        def __reduce__(self) -> Any:
            raise TypeError("no")

    bad = Unpicklable("y")
    info = ErrorInfo.from_exception(bad, "t")
    trip = pickle.loads(pickle.dumps(TaskOutcome("t", 1, "error", error=bad, error_info=info)))
    assert isinstance(trip.error, WorkflowError) and "Unpicklable: y" in str(trip.error)
    assert trip.error.task_id == "t"


def test_storage_unavailable_before_the_attempt_is_a_system_error(monkeypatch):
    monkeypatch.setattr(attempts, "RECORD_AFTER", 0)
    broken = WorkflowStore(FaultyStorage(MemoryStorage(), "get", error=True, times=None))
    outcome = execute_task(call(broken, abs, TaskRef("up")))
    assert outcome.kind == "error" and outcome.system
    assert isinstance(outcome.error, StorageUnavailableError)
