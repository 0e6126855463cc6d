"""The attempt contract (model/calls.py): OutcomeKind is an enum that stays a str on the wire,
and calls and outcomes cross processes as the executors ship them."""

from __future__ import annotations

import pickle
import subprocess
import sys

import cloudpickle
import pytest

from durableflow.model.calls import OutcomeKind, TaskCall, TaskOutcome
from durableflow.model.dag import TaskNode
from durableflow.model.task import TaskOptions
from durableflow.runtime.attempt import execute_task
from durableflow.storage.memory import MemoryStorage
from durableflow.storage.store import WorkflowStore


def test_outcome_kinds_compare_hash_and_print_as_their_old_strings():
    assert [k.value for k in OutcomeKind] == ["ok", "error", "continuation"]
    assert OutcomeKind.OK == "ok" and {OutcomeKind.ERROR} == {"error"}
    assert {"continuation": 1}[OutcomeKind.CONTINUATION] == 1
    logged = "%s" % OutcomeKind.CONTINUATION  # noqa: UP031 - the engine's log line formats so
    assert (str(OutcomeKind.OK), f"{OutcomeKind.ERROR}", logged) == ("ok", "error", "continuation")


def test_an_outcome_given_a_plain_string_holds_the_enum_and_a_bad_one_is_refused():
    assert TaskOutcome("t", 1, "ok").kind is OutcomeKind.OK
    assert TaskOutcome("t", 1, OutcomeKind.ERROR).kind is OutcomeKind.ERROR
    with pytest.raises(ValueError, match="'done'"):
        TaskOutcome("t", 1, "done")


def test_an_outcome_pickles_its_kind_by_value_and_comes_back_the_same_member():
    outcome = TaskOutcome("t", 2, OutcomeKind.CONTINUATION, start=1.0, end=2.0)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        data = dumps(outcome)
        assert b"continuation" in data and b"CONTINUATION" not in data
        back = pickle.loads(data)
        assert back.kind is OutcomeKind.CONTINUATION
        assert (back.task_id, back.attempt, back.start, back.end) == ("t", 2, 1.0, 2.0)


def test_an_outcome_pickled_with_a_plain_string_kind_unpickles_with_the_enum():
    outcome = TaskOutcome("t", 1, OutcomeKind.OK)
    outcome.__dict__["kind"] = "ok"  # as a worker running the code before the enum pickles it
    data = pickle.dumps(outcome)
    assert b"OutcomeKind" not in data
    assert pickle.loads(data).kind is OutcomeKind.OK


def test_an_outcome_unpickles_in_a_fresh_interpreter_with_the_enum():
    data = pickle.dumps(TaskOutcome("t", 1, OutcomeKind.OK, value=42, has_value=True))
    code = (
        "import pickle, sys; o = pickle.loads(sys.stdin.buffer.read()); "
        "from durableflow.model.calls import OutcomeKind; "
        "print(o.kind is OutcomeKind.OK, o.value)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True, timeout=60
    )
    assert done.stdout.decode().split() == ["True", "42"]


def test_a_call_travels_without_its_store():
    store = WorkflowStore(MemoryStorage())
    call = TaskCall("w", "t", 1, len, ((1, 2),), {}, {}, True, False, store=store)
    back = pickle.loads(cloudpickle.dumps(call))
    assert back.store is None and call.store is store
    assert (back.workflow_id, back.task_id, back.args) == ("w", "t", ((1, 2),))


def _continues() -> TaskNode:
    return TaskNode(len, ((1,),), {}, TaskOptions())


def test_execute_task_answers_with_enum_members():
    store = WorkflowStore(MemoryStorage())

    def call(func, *args):
        return TaskCall("w", func.__name__, 1, func, args, {}, {}, True, False, store=store)

    def boom():
        raise ValueError("x")

    assert execute_task(call(len, (1, 2))).kind is OutcomeKind.OK
    assert execute_task(call(boom)).kind is OutcomeKind.ERROR
    assert execute_task(call(_continues)).kind is OutcomeKind.CONTINUATION
    assert store.read_output("w", "len") == 2
