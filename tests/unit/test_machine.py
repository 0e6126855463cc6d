"""The pure state machine and retry policy: plain values in, commands out."""

from __future__ import annotations

from durableflow.core.machine import (
    CatchError,
    CompleteParent,
    FailWorkflow,
    FinishWorkflow,
    RecordTaskError,
    SubmitTask,
    TaskContinued,
    TaskFailed,
    TaskSucceeded,
    decide,
    start,
)
from durableflow.core.retry import FailureAction, on_failure
from durableflow.core.state import RunState, TaskStatus
from durableflow.model.dag import FlatDAG, TaskRef, TaskSpec
from durableflow.model.task import TaskOptions


def f() -> None:
    pass


def spec(task_id: str, *upstream: str, **options: object) -> TaskSpec:
    args = tuple(TaskRef(u) for u in upstream)
    return TaskSpec(task_id, f, args, {}, TaskOptions(**options), tuple(upstream))  # type: ignore[arg-type]


def dag(*specs: TaskSpec) -> FlatDAG:
    return FlatDAG(specs[-1].task_id, specs)


def submitted(commands: list) -> list[str]:
    return [c.task_id for c in commands if isinstance(c, SubmitTask)]


def test_start_submits_every_ready_task():
    state = RunState.new("w", dag(spec("a"), spec("b"), spec("c", "a", "b")))
    assert submitted(start(state)) == ["a", "b"]
    assert state.tasks["a"].attempts == 1


def test_dependent_is_submitted_when_its_last_input_is_done():
    state = RunState.new("w", dag(spec("a"), spec("b"), spec("c", "a", "b")))
    start(state)
    assert submitted(decide(state, TaskSucceeded("a"))) == []
    assert submitted(decide(state, TaskSucceeded("b"))) == ["c"]
    assert decide(state, TaskSucceeded("c")) == [FinishWorkflow()]
    assert state.finished


def test_application_error_fails_without_retry_by_default():
    state = RunState.new("w", dag(spec("a")))
    start(state)
    err = ValueError("x")
    commands = decide(state, TaskFailed("a", err))
    assert commands == [RecordTaskError("a", 1, err), FailWorkflow("a", err, False)]


def test_retry_exceptions_true_retries_up_to_max_retries():
    state = RunState.new("w", dag(spec("a", max_retries=2, retry_exceptions=True)))
    start(state)
    err = ValueError("x")
    assert submitted(decide(state, TaskFailed("a", err))) == ["a"]
    assert submitted(decide(state, TaskFailed("a", err))) == ["a"]
    assert state.tasks["a"].attempts == 3
    assert isinstance(decide(state, TaskFailed("a", err))[-1], FailWorkflow)


def test_storage_faults_are_retried_and_then_leave_the_run_resumable():
    state = RunState.new("w", dag(spec("a", max_retries=1)))
    start(state)
    err = OSError("storage unreachable")
    assert submitted(decide(state, TaskFailed("a", err, resumable=True))) == ["a"]
    last = decide(state, TaskFailed("a", err, resumable=True))[-1]
    assert last == FailWorkflow("a", err, True)


def test_a_worker_that_crashes_on_every_attempt_fails_the_task_as_in_ray():
    state = RunState.new("w", dag(spec("a", max_retries=1)))
    start(state)
    err = OSError("worker lost")
    assert submitted(decide(state, TaskFailed("a", err, system=True))) == ["a"]
    last = decide(state, TaskFailed("a", err, system=True))[-1]
    assert last == FailWorkflow("a", err, False)


def test_a_crashed_worker_is_caught_by_catch_exceptions_but_a_storage_fault_is_not():
    state = RunState.new("w", dag(spec("a", max_retries=0, catch_exceptions=True)))
    start(state)
    err = OSError("worker lost")
    assert decide(state, TaskFailed("a", err, system=True))[-1] == CatchError("a", err)
    state = RunState.new("w", dag(spec("a", max_retries=0, catch_exceptions=True)))
    start(state)
    assert decide(state, TaskFailed("a", err, resumable=True))[-1] == FailWorkflow("a", err, True)


def test_catch_exceptions_turns_failure_into_output():
    state = RunState.new("w", dag(spec("a", catch_exceptions=True), spec("b", "a")))
    start(state)
    err = KeyError("k")
    assert decide(state, TaskFailed("a", err))[-1] == CatchError("a", err)
    assert submitted(decide(state, TaskSucceeded("a"))) == ["b"]


def test_failure_waits_for_running_tasks_before_failing_the_run():
    state = RunState.new("w", dag(spec("a"), spec("b"), spec("c", "a", "b")))
    start(state)
    err = ValueError("x")
    assert not any(isinstance(c, FailWorkflow) for c in decide(state, TaskFailed("a", err)))
    assert decide(state, TaskSucceeded("b")) == [FailWorkflow("a", err, False)]


def test_continuation_completes_parent_then_root():
    state = RunState.new("w", dag(spec("p")))
    start(state)
    child = dag(spec("c1"), spec("c2", "c1"))
    assert submitted(decide(state, TaskContinued("p", child))) == ["c1"]
    assert state.tasks["p"].status is TaskStatus.CONTINUED
    assert submitted(decide(state, TaskSucceeded("c1"))) == ["c2"]
    assert decide(state, TaskSucceeded("c2")) == [CompleteParent("p", "c2", False)]
    assert decide(state, TaskSucceeded("p")) == [FinishWorkflow()]


def test_error_in_continuation_is_caught_by_a_catching_parent():
    state = RunState.new("w", dag(spec("p", catch_exceptions=True), spec("q", "p")))
    start(state)
    decide(state, TaskContinued("p", dag(spec("c"))))
    err = RuntimeError("deep")
    assert decide(state, TaskFailed("c", err))[-1] == CatchError("p", err)
    assert submitted(decide(state, TaskSucceeded("p"))) == ["q"]


def test_error_anywhere_in_a_continuation_dag_is_caught_by_the_catching_parent():
    # Ray: f1 (catch) returns continuation(f2.bind(f3.bind())) and f3 raises -> (None, error).
    state = RunState.new("w", dag(spec("f1", catch_exceptions=True)))
    start(state)
    assert submitted(decide(state, TaskContinued("f1", dag(spec("f3"), spec("f2", "f3"))))) == [
        "f3"
    ]
    err = RuntimeError("inner")
    assert decide(state, TaskFailed("f3", err))[-1] == CatchError("f1", err)
    assert decide(state, TaskSucceeded("f1")) == [FinishWorkflow()]


def test_a_caught_continuation_ignores_late_outcomes_of_its_other_tasks():
    state = RunState.new("w", dag(spec("p", catch_exceptions=True)))
    start(state)
    decide(state, TaskContinued("p", dag(spec("x"), spec("y"), spec("c", "x", "y"))))
    err = RuntimeError("x failed")
    assert decide(state, TaskFailed("x", err))[-1] == CatchError("p", err)
    assert decide(state, TaskSucceeded("y")) == []  # nothing of the abandoned DAG starts
    assert decide(state, TaskSucceeded("p")) == [FinishWorkflow()]


def test_resume_completes_a_parent_whose_continuation_finished_before_the_crash():
    # Killed after the child's checkpoint, before the parent's forward record (issue 9.1).
    batches = {"root": dag(spec("p"), spec("q", "p")), "p": dag(spec("c"))}
    state = RunState.from_stored("w", batches, done={"c"})
    assert state.tasks["p"].status is TaskStatus.CONTINUED
    assert start(state) == [CompleteParent("p", "c", False)]
    assert submitted(decide(state, TaskSucceeded("p"))) == ["q"]


def test_resume_continues_attempt_numbers_but_not_the_retry_budget():
    batches = {"root": dag(spec("a", max_retries=1))}
    state = RunState.from_stored("w", batches, done=set(), attempts={"a": 3})
    assert start(state) == [SubmitTask("a", 4)]
    err = OSError("worker lost")
    assert decide(state, TaskFailed("a", err, system=True)) == [
        RecordTaskError("a", 4, err, final=False),
        SubmitTask("a", 5),
    ]


def test_error_in_continuation_without_catch_fails_the_run():
    state = RunState.new("w", dag(spec("p")))
    start(state)
    decide(state, TaskContinued("p", dag(spec("c"))))
    err = RuntimeError("deep")
    assert decide(state, TaskFailed("c", err))[-1] == FailWorkflow("c", err, False)


def test_state_from_storage_skips_done_tasks_and_needs_only_what_the_root_needs():
    batches = {"root": dag(spec("a"), spec("b", "a"), spec("c", "b"))}
    state = RunState.from_stored("w", batches, done={"a", "b"})
    assert set(state.tasks) == {"c"}
    assert submitted(start(state)) == ["c"]


def test_state_from_storage_resumes_inside_a_continuation():
    batches = {"root": dag(spec("a"), spec("p", "a")), "p": dag(spec("c1"), spec("c2", "c1"))}
    state = RunState.from_stored("w", batches, done={"a", "c1"})
    assert set(state.tasks) == {"p", "c2"}
    assert state.tasks["p"].status is TaskStatus.CONTINUED
    assert submitted(start(state)) == ["c2"]
    assert decide(state, TaskSucceeded("c2")) == [CompleteParent("p", "c2", False)]


def test_finished_root_means_nothing_to_run():
    state = RunState.from_stored("w", {"root": dag(spec("a"))}, done={"a"})
    assert start(state) == [FinishWorkflow()]


def test_retry_policy_table():
    default = TaskOptions()
    assert on_failure(default, 1, ValueError(), system=False) is FailureAction.FAIL
    assert on_failure(default, 1, ValueError(), system=True) is FailureAction.RETRY
    assert on_failure(default, 4, ValueError(), system=True) is FailureAction.FAIL
    typed = TaskOptions(retry_exceptions=(KeyError,))
    assert on_failure(typed, 1, KeyError(), system=False) is FailureAction.RETRY
    assert on_failure(typed, 1, ValueError(), system=False) is FailureAction.FAIL
    unlimited = TaskOptions(max_retries=-1, retry_exceptions=True)
    assert on_failure(unlimited, 1000, ValueError(), system=False) is FailureAction.RETRY
    catching = TaskOptions(catch_exceptions=True, max_retries=0)
    assert on_failure(catching, 1, ValueError(), system=False) is FailureAction.CATCH
    assert on_failure(catching, 1, ValueError(), system=True) is FailureAction.CATCH
    resumable = on_failure(catching, 1, ValueError(), system=True, catchable=False)
    assert resumable is FailureAction.FAIL


def test_a_continuation_may_read_a_task_done_before_the_resume():
    batches = {"root": dag(spec("a"), spec("p", "a"))}
    state = RunState.from_stored("w", batches, done={"a"})
    assert submitted(start(state)) == ["p"]
    assert submitted(decide(state, TaskContinued("p", dag(spec("c", "a"))))) == ["c"]


def test_a_continuation_that_reads_its_own_parent_fails_the_parent_instead_of_waiting():
    state = RunState.new("w", dag(spec("p")))
    start(state)
    commands = decide(state, TaskContinued("p", dag(spec("c", "p"))))
    assert isinstance(commands[-1], FailWorkflow) and commands[-1].task_id == "p"
    assert "waits for this continuation" in str(commands[-1].error)
    assert "c" not in state.tasks


def test_a_continuation_that_reads_an_unknown_task_fails_its_parent():
    state = RunState.new("w", dag(spec("p")))
    start(state)
    commands = decide(state, TaskContinued("p", dag(spec("c", "nowhere"))))
    assert isinstance(commands[-1], FailWorkflow)
    assert "unknown task 'nowhere'" in str(commands[-1].error)
