"""Early mode on Ray (:mod:`durableflow.ray.pipeline`): one test per step of its protocol.

1-2. a consumer is submitted with its upstream's ObjectRef and starts before that upstream's
     checkpoint is written;
3.   an early attempt that failed is adopted with its failure (it ran once), and a consumer of a
     failed upstream never runs its function;
4.   a checkpoint is written only after the checkpoints of the inputs it was computed from, so a
     killed owner (before any of its writes) leaves the stored checkpoints closed under
     "upstream of", and a resume reruns only the tasks without one;
5.   the engine sees a task done only once its checkpoint is stored (the run's result).

The in-process tests drive the engine here (``Client(executor=RayExecutor())``), so that the
fence hook (called before each checkpoint write of this process) can hold or count the writes.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import ray

from durableflow import Client, WorkflowExecutionError, workflow
from durableflow.ray.executor import RayExecutor
from helpers import append_line, count_lines, wait_until

DRIVER = Path(__file__).with_name("early_driver.py")
WRITER = "durableflow-checkpoint"


@ray.remote
def step(previous: int, name: str, log: str) -> int:
    append_line(log, name)
    return previous + 1


@ray.remote(max_retries=0)
def broken(name: str, log: str) -> int:
    append_line(log, name)
    raise ValueError("broken on purpose")


def named(func: Any, task_id: str) -> Any:
    return func.options(**workflow.options(task_id=task_id))


def chain(log: Path, length: int) -> Any:
    node = named(step, "t1").bind(0, "t1", str(log))
    for i in range(2, length + 1):
        node = named(step, f"t{i}").bind(node, f"t{i}", str(log))
    return node


class Writes:
    """A fence hook: counts the checkpoint writes of this process, and can hold the first."""

    def __init__(self, hold_first_until: Any = None) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.hold = hold_first_until
        self._lock = threading.Lock()

    def __call__(self, workflow_id: str) -> None:
        if not threading.current_thread().name.startswith(WRITER):
            return  # an early submission
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first and self.hold is not None:
            wait_until(self.hold, timeout=60)


@pytest.fixture
def client(tmp_path: Path) -> Any:
    executor = RayExecutor()
    with Client(str(tmp_path / "store"), executor=executor) as made:
        yield made, executor


def test_a_consumer_starts_before_its_upstream_checkpoint_is_written(
    client: Any, log: Path
) -> None:
    made, executor = client
    # t2's checkpoint is the first this process writes (t1's inputs were there: its worker
    # writes it). Held until t3 ran: t3 started on t2's ObjectRef, before t2's checkpoint.
    executor.fence = Writes(hold_first_until=lambda: count_lines(log).get("t3"))
    assert made.run(chain(log, 3), workflow_id="early") == 3
    assert count_lines(log) == {"t1": 1, "t2": 1, "t3": 1}
    assert made.store.list_done("early") == {"t1", "t2", "t3"}


def test_a_checkpoint_waits_for_the_checkpoint_of_the_input_it_was_computed_from(
    client: Any, log: Path
) -> None:
    made, executor = client
    writes = Writes()
    writes.hold = writes.release.is_set  # t2's write waits for the test
    executor.fence = writes
    future = made.run_async(chain(log, 3), workflow_id="ordered")
    wait_until(lambda: count_lines(log).get("t3"), timeout=60)
    pending = executor._pipeline  # t3's outcome must have reached this process
    wait_until(lambda: _computed(pending, "ordered", "t3"), timeout=60)
    assert writes.calls == 1  # t2's write, held; t3's has not started
    assert made.store.list_done("ordered") == {"t1"}
    writes.release.set()
    assert future.result(timeout=60) == 3
    assert made.store.list_done("ordered") == {"t1", "t2", "t3"}
    assert writes.calls == 2


def _computed(pipeline: Any, workflow_id: str, task_id: str) -> bool:
    for (wid, _), run in list(pipeline._runs.items()):
        entry = run.entries.get(task_id)
        if wid == workflow_id and entry is not None and entry.computed is not None:
            return True
    return False


def test_a_consumer_of_a_failed_task_never_runs_and_the_failure_counts_once(
    client: Any, log: Path
) -> None:
    made, _ = client
    dag = named(step, "t3").bind(named(step, "t2").bind(named(broken, "t1").bind("t1", str(log)), "t2", str(log)), "t3", str(log))  # fmt: skip
    with pytest.raises(WorkflowExecutionError):
        made.run(dag, workflow_id="failing")
    assert count_lines(log) == {"t1": 1}
    assert made.store.list_done("failing") == set()


@pytest.mark.parametrize("kill_at", [1, 2, 4])
def test_a_killed_owner_leaves_only_closed_checkpoints_and_resume_reruns_the_rest(
    tmp_path: Path, log: Path, kill_at: int
) -> None:
    storage = str(tmp_path / "store")
    address = ray.get_runtime_context().gcs_address
    done = subprocess.run(
        [sys.executable, str(DRIVER), address, storage, str(log), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr[-2000:]
    with Client(storage, executor=RayExecutor()) as made:
        stored = made.store.list_done("chain")
        # Writes in order: t1 by its worker, then t2, t3... here; killed before write kill_at.
        assert stored == {f"t{i}" for i in range(1, kill_at + 1)}
        before = count_lines(log)
        assert made.resume("chain") == 5
        after = count_lines(log)
    for task_id in stored:
        assert after[task_id] == before[task_id]  # a checkpointed task never reruns
    assert set(after) == {f"t{i}" for i in range(1, 6)}
