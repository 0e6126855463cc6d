"""Durable waits hold no executor thread (issue 9.10): the wait service, then through a Client.

The first part drives :mod:`durableflow.runtime.waits` directly with TaskCalls built here, step
by step of its protocol (attempt record, inputs, the listener, checkpoint, outcome). The second
part runs workflows on a Client with a small thread pool: sleeping workflows do not hold its
threads, do not count against its in-flight window, and stop at once when canceled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from durableflow import Client, WorkflowStatus, workflow
from durableflow.errors import (
    StorageError,
    WorkflowCancellationError,
    WorkflowExecutionError,
)
from durableflow.executors.local import ThreadExecutor
from durableflow.model.calls import TaskCall, TaskOutcome
from durableflow.model.dag import TaskRef
from durableflow.model.events import TimerListener, poll_for_event, wake_time
from durableflow.runtime import waits
from durableflow.runtime.attempt import execute_task
from durableflow.runtime.context import current_task_id, current_workflow_id
from durableflow.runtime.waits import WaitService, active_waits, cancel_wait, is_wait
from durableflow.storage.attempts import read_attempt
from durableflow.storage.filesystem import FileStorage
from durableflow.storage.serializer import Serializer
from durableflow.storage.store import WorkflowStore
from durableflow.testing.faults import FaultyStorage
from helpers import count_lines, wait_until

# --- listeners ------------------------------------------------------------------------------

_GATE = threading.Event()
_CALLS: list[str] = []
_CANCELED = threading.Event()


class EchoListener(workflow.EventListener):
    """Returns its argument, with the task context it saw."""

    async def poll_for_event(self, value: Any) -> Any:
        await asyncio.sleep(0)
        return (value, current_workflow_id(), current_task_id())


class FailingListener(workflow.EventListener):
    async def poll_for_event(self) -> None:
        raise ValueError("the queue is gone")


class ExitingListener(workflow.EventListener):
    async def poll_for_event(self) -> None:
        raise SystemExit(3)


class GatedListener(workflow.EventListener):
    """Waits (async) for the test to open the gate; notes a cancellation."""

    async def poll_for_event(self, name: str) -> str:
        _CALLS.append(name)
        try:
            while not _GATE.is_set():
                await asyncio.sleep(0.005)
        except asyncio.CancelledError:
            _CANCELED.set()
            raise
        return name


class PlainListener(workflow.EventListener):
    """A plain-function listener: it blocks a thread of the listener pool."""

    def poll_for_event(self, name: str) -> Any:  # type: ignore[override]
        _CALLS.append(name)
        _GATE.wait(30)
        return (name, current_workflow_id())


@pytest.fixture(autouse=True)
def _reset_listeners() -> Iterator[None]:
    _GATE.clear()
    _CALLS.clear()
    _CANCELED.clear()
    yield
    _GATE.set()  # let any blocked plain listener go


@pytest.fixture
def store(tmp_path: Path) -> WorkflowStore:
    return WorkflowStore(FileStorage(tmp_path / "store"), Serializer(None))


@pytest.fixture
def service() -> Iterator[WaitService]:
    svc = WaitService(listener_threads=2, storage_threads=2)
    yield svc
    _GATE.set()
    svc.close()


def wait_call(store: WorkflowStore, *args: Any, task_id: str = "poll", **fields: Any) -> TaskCall:
    """A call of the event-polling task, as the engine builds it for a thread executor."""
    base: dict[str, Any] = {"inputs": {}, "checkpoint": True, "catch": False, "store": store}
    base.update(fields)
    return TaskCall("wf", task_id, 1, poll_for_event.func, args, {}, **base)


# --- the service, step by step --------------------------------------------------------------


def test_is_wait_recognises_the_polling_task_as_stored_in_specs() -> None:
    assert is_wait(poll_for_event.func)
    assert is_wait(poll_for_event)
    assert is_wait(cloudpickle.loads(cloudpickle.dumps(poll_for_event.func)))
    assert not is_wait(wake_time.func)
    assert not is_wait(execute_task)


def test_a_wait_reads_inputs_and_checkpoints_its_event_like_execute_task(
    service: WaitService, store: WorkflowStore
) -> None:
    store.write_output("wf", "up", "from storage")
    call = wait_call(store, EchoListener, TaskRef("up"))
    outcome = service.submit(call).result(timeout=30)
    event = ("from storage", "wf", "poll")
    assert (outcome.kind, outcome.value, outcome.has_value, outcome.system) == (
        "ok",
        event,
        True,
        False,
    )
    assert outcome.start <= outcome.end
    assert store.read_output("wf", "poll") == event
    header = store.read_output_header("wf", "poll")
    assert header == {"start": outcome.start, "end": header["end"], "attempt": 1}
    # The same fields as an ordinary task's checkpoint.
    twin = execute_task(dataclasses.replace(call, func=lambda: event, task_id="twin", args=()))
    assert set(store.read_output_header("wf", "twin")) == set(header)
    assert twin.kind == outcome.kind and twin.has_value == outcome.has_value


def test_a_wait_honours_return_value_and_catch_exceptions(
    service: WaitService, store: WorkflowStore
) -> None:
    quiet = service.submit(wait_call(store, EchoListener, 1, task_id="a", return_value=False))
    outcome = quiet.result(timeout=30)
    assert (outcome.kind, outcome.value, outcome.has_value) == ("ok", None, False)
    assert store.read_output("wf", "a") == (1, "wf", "a")
    caught = service.submit(wait_call(store, EchoListener, 2, task_id="b", catch=True))
    assert caught.result(timeout=30).value == ((2, "wf", "b"), None)
    assert store.read_output("wf", "b") == ((2, "wf", "b"), None)


def test_a_timer_wakes_at_the_stored_wake_up_time(
    service: WaitService, store: WorkflowStore
) -> None:
    wake_at = time.time() + 0.3
    store.write_output("wf", "wake", wake_at)
    outcome = service.submit(wait_call(store, TimerListener, TaskRef("wake"))).result(timeout=30)
    assert outcome.kind == "ok"
    assert time.time() >= wake_at and outcome.end >= wake_at
    assert store.has_output("wf", "poll")


def test_another_runners_checkpoint_wins(service: WaitService, store: WorkflowStore) -> None:
    store.write_output("wf", "poll", "theirs")
    outcome = service.submit(wait_call(store, EchoListener, "mine")).result(timeout=30)
    assert (outcome.kind, outcome.value) == ("ok", "theirs")
    assert store.read_output("wf", "poll") == "theirs"


@pytest.mark.parametrize("listener", [FailingListener, ExitingListener])
def test_a_listener_that_raises_fails_the_task_and_the_loop_lives_on(
    service: WaitService, store: WorkflowStore, listener: type
) -> None:
    outcome = service.submit(wait_call(store, listener)).result(timeout=30)
    assert outcome.kind == "error" and not outcome.system
    assert isinstance(outcome.error, (ValueError, SystemExit))
    assert outcome.error_info is not None and outcome.error_info.task_id == "poll"
    assert not store.has_output("wf", "poll")
    record = read_attempt(store, "wf", "poll")
    assert record is not None and record.state.value == "FAILED"
    # The loop thread survived SystemExit: the next wait works.
    after = service.submit(wait_call(store, EchoListener, 1, task_id="next")).result(timeout=30)
    assert after.kind == "ok"


def test_a_missing_input_is_a_system_error(service: WaitService, store: WorkflowStore) -> None:
    outcome = service.submit(wait_call(store, EchoListener, TaskRef("nowhere"))).result(timeout=30)
    assert (outcome.kind, outcome.system) == ("error", True)
    assert isinstance(outcome.error, KeyError)


@pytest.mark.parametrize(
    ("op", "key", "polled"),
    [
        ("get", "/outputs/up", False),  # step 2
        ("create", "/outputs/poll", True),  # step 5
    ],
)
def test_storage_errors_at_each_step_are_system_errors(
    service: WaitService, tmp_path: Path, op: str, key: str, polled: bool
) -> None:
    inner = FileStorage(tmp_path / "faulty")
    WorkflowStore(inner, Serializer(None)).write_output("wf", "up", "x")
    faulty = WorkflowStore(FaultyStorage(inner, op, key=key, error=True), Serializer(None))
    _GATE.set()
    call = wait_call(faulty, GatedListener, TaskRef("up"))
    outcome = service.submit(call).result(timeout=30)
    assert (outcome.kind, outcome.system) == ("error", True)
    assert isinstance(outcome.error, StorageError)
    assert (_CALLS == ["x"]) is polled
    assert not faulty.has_output("wf", "poll")


def test_a_failed_attempt_record_does_not_stop_the_wait(
    service: WaitService, tmp_path: Path
) -> None:
    faulty = FaultyStorage(FileStorage(tmp_path / "faulty"))
    fault = faulty.inject("create", key="/attempts/", error=True, times=None)
    store = WorkflowStore(faulty, Serializer(None))
    call = wait_call(store, TimerListener, time.time() + 0.3)  # long enough to be recorded
    outcome = service.submit(call).result(timeout=30)
    assert fault.fired >= 1  # the RUNNING record was tried and failed (logged)
    assert outcome.kind == "ok" and store.has_output("wf", "poll")


def test_cancel_stops_a_waiting_listener_at_once(
    service: WaitService, store: WorkflowStore
) -> None:
    future = service.submit(wait_call(store, GatedListener, "long"))
    wait_until(lambda: _CALLS == ["long"])
    assert cancel_wait(future)
    wait_until(_CANCELED.is_set)
    wait_until(lambda: service.active == 0)
    assert future.cancelled()
    assert not store.has_output("wf", "poll")


def test_a_canceled_timer_does_not_sleep_on(service: WaitService, store: WorkflowStore) -> None:
    call = wait_call(store, TimerListener, time.time() + 3600)
    future = service.submit(call)
    wait_until(lambda: read_attempt(store, "wf", "poll") is not None)
    future.cancel()  # as the engine's Executor.cancel does
    wait_until(lambda: service.active == 0)
    assert not store.has_output("wf", "poll")


def test_two_hundred_waits_use_a_handful_of_threads(
    service: WaitService, store: WorkflowStore
) -> None:
    before = threading.active_count()
    futures = [
        service.submit(wait_call(store, GatedListener, f"w{i}", task_id=f"p{i}"))
        for i in range(200)
    ]
    wait_until(lambda: len(_CALLS) == 200)
    during = threading.active_count()
    assert service.active == 200
    assert during - before <= 1 + 2  # the loop and the storage pool; async listeners: no pool
    _GATE.set()
    outcomes = [f.result(timeout=60) for f in futures]
    assert {o.kind for o in outcomes} == {"ok"}
    assert len(store.list_done("wf")) == 200


def test_plain_function_listeners_share_a_bounded_pool(
    service: WaitService, store: WorkflowStore
) -> None:
    futures = [
        service.submit(wait_call(store, PlainListener, f"p{i}", task_id=f"p{i}")) for i in range(3)
    ]
    wait_until(lambda: len(_CALLS) == 2)
    time.sleep(0.2)  # give a third thread the chance it must not have
    assert len(_CALLS) == 2  # the pool has 2 threads: the third listener waits its turn
    _GATE.set()
    values = sorted(f.result(timeout=30).value for f in futures)
    assert values == [("p0", "wf"), ("p1", "wf"), ("p2", "wf")]


def test_a_forked_child_gets_its_own_wait_loop(store: WorkflowStore) -> None:
    parent = waits.submit_wait(wait_call(store, EchoListener, "parent", task_id="parent"))
    assert parent.result(timeout=30).kind == "ok"
    pid = os.fork()
    if pid == 0:  # the child: the parent's loop thread does not exist here
        code = 1
        try:
            call = wait_call(store, EchoListener, "child", task_id="child")
            code = 0 if waits.submit_wait(call).result(timeout=20).kind == "ok" else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.read_output("wf", "child") == ("child", "wf", "child")


def test_outcome_has_the_fields_the_engine_reads(
    service: WaitService, store: WorkflowStore
) -> None:
    outcome = service.submit(wait_call(store, EchoListener, 5)).result(timeout=30)
    assert isinstance(outcome, TaskOutcome)
    assert (outcome.task_id, outcome.attempt, outcome.continuation, outcome.value_ref) == (
        "poll",
        1,
        None,
        None,
    )


# --- through a Client (needs the engine to route waits: runtime/engine.py ``_ship``) --------


@workflow.task
def quick() -> str:
    return "done"


@workflow.task
def gather(*values: Any) -> int:
    return len(values)


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[Client]:
    client = Client(
        str(tmp_path / "client"), executor=ThreadExecutor(max_workers=2), cancel_poll=0.05
    )
    yield client
    _GATE.set()
    client.close(wait=False)


POLL_ID = poll_for_event.bind(TimerListener, 0).name


def _polling(client: Client, workflow_ids: list[str]) -> int:
    """How many of these workflows started their wait (its attempt is recorded in storage)."""
    return sum(read_attempt(client.store, wid, POLL_ID) is not None for wid in workflow_ids)


def test_sleeping_workflows_do_not_delay_a_one_task_workflow(small_client: Client) -> None:
    baseline = active_waits()
    ids = [f"sleeper-{i}" for i in range(8)]
    sleepers = [small_client.run_async(workflow.sleep(30), workflow_id=wid) for wid in ids]
    # Before 9.10 the first two sleeping tasks took both threads of the pool here.
    wait_until(lambda: _polling(small_client, ids) >= 2)
    assert small_client.run(quick.bind(), workflow_id="quick") == "done"
    assert not any(f.done() for f in sleepers)  # it finished before every sleeper
    wait_until(lambda: _polling(small_client, ids) == 8)  # all eight wait at once
    assert active_waits() - baseline == 8
    for wid in ids:
        small_client.cancel(wid)
    for future in sleepers:
        with pytest.raises(WorkflowCancellationError):
            future.result(timeout=30)
    wait_until(lambda: active_waits() == baseline)


def test_two_hundred_sleeps_of_one_workflow_wait_at_once_on_a_handful_of_threads(
    small_client: Client,
) -> None:
    baseline, before = active_waits(), threading.active_count()
    dag = gather.bind(*[workflow.sleep(3600) for _ in range(200)])
    future = small_client.run_async(dag, workflow_id="many")
    # Not held back by the executor's threads or its in-flight window (8 for 2 threads).
    wait_until(lambda: active_waits() - baseline == 200, timeout=60)
    during = threading.active_count()
    # The engine's thread, 2 executor threads, the wait loop and its storage pool, the lease.
    assert during - before <= 12
    small_client.cancel("many")
    with pytest.raises(WorkflowCancellationError):
        future.result(timeout=30)
    wait_until(lambda: active_waits() == baseline)


def test_cancel_during_a_long_sleep_stops_it_and_frees_the_pool(tmp_path: Path) -> None:
    client = Client(str(tmp_path / "c1"), executor=ThreadExecutor(max_workers=1), cancel_poll=0.05)
    try:
        baseline = active_waits()
        future = client.run_async(workflow.sleep(3600), workflow_id="nap")
        wait_until(lambda: _polling(client, ["nap"]) == 1)
        client.cancel("nap")
        with pytest.raises(WorkflowCancellationError):
            future.result(timeout=30)
        assert client.get_status("nap") is WorkflowStatus.CANCELED
        # The only executor thread is free at once, not in an hour.
        assert client.run_async(quick.bind(), workflow_id="after").result(timeout=30) == "done"
        wait_until(lambda: active_waits() == baseline)  # the timer itself stopped
    finally:
        client.close(wait=False)


def test_a_listener_that_raises_fails_the_workflow(small_client: Client) -> None:
    with pytest.raises(WorkflowExecutionError, match="the queue is gone"):
        small_client.run(workflow.wait_for_event(FailingListener), workflow_id="bad")
    assert small_client.get_status("bad") is WorkflowStatus.FAILED


def test_an_event_wait_completes_through_the_client(small_client: Client) -> None:
    _GATE.set()
    dag = workflow.wait_for_event(GatedListener, "hello")
    assert small_client.run(dag, workflow_id="ev") == "hello"
    assert _CALLS == ["hello"]


KILLED_WAITER = """
import sys
from durableflow import Client, workflow
from durableflow.storage.filesystem import FileStorage
from durableflow.testing.faults import FaultyStorage, kill_this_process


class Once(workflow.EventListener):
    async def poll_for_event(self, log):
        with open(log, "a") as handle:
            handle.write("polled\\n")
        return "ev"


@workflow.task
def shout(text):
    return text.upper()


op, key = sys.argv[3], sys.argv[4]
storage = FaultyStorage(FileStorage(sys.argv[1]), op, key=key, after=kill_this_process)
dag = shout.bind(workflow.wait_for_event(Once, sys.argv[2]))
Client(storage).run(dag, workflow_id="once")
"""


def test_a_wait_killed_after_its_checkpoint_never_polls_again(tmp_path: Path) -> None:
    """Step 5 landed, then a SIGKILL: the resume uses the stored event. (A kill during step 3
    is test_events.py::test_sleep_keeps_its_wake_time_across_a_crash.)"""
    import subprocess
    import sys

    store_dir, log = tmp_path / "store", tmp_path / "polls"
    store_dir.mkdir()
    key = f"/outputs/{POLL_ID}"
    args = [sys.executable, "-c", KILLED_WAITER, str(store_dir), str(log), "create", key]
    assert subprocess.run(args, timeout=120).returncode == -9
    assert count_lines(log) == {"polled": 1}
    with Client(str(store_dir)) as client:
        assert client.get_status("once") is WorkflowStatus.RESUMABLE
        assert client.resume("once") == "EV"
    assert count_lines(log) == {"polled": 1}
