"""Virtual actors on a local Ray: bodies as Ray tasks, calls applied by the coordinator.

Each test records where the method ran (``where()``: the process, Ray's task and actor ids and
the CPUs Ray assigned) and asserts it was a Ray task in a Ray worker, not this driver and not
the coordinator actor, so a test fails if the embedded path served the call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from durableflow import Client, workflow
from durableflow.actors import (
    ActorCallError,
    actor_calls,
    actor_info,
    get_actor,
    virtual_actor,
)
from durableflow.ray.coordinator import shutdown_coordinator
from helpers import wait_until


def where() -> dict[str, Any]:
    """Where this code runs: the process, Ray's task and actor, the CPUs Ray gave it."""
    context = ray.get_runtime_context()
    return {
        "pid": os.getpid(),
        "task": context.get_task_id(),
        "actor": context.get_actor_id(),
        "cpus": context.get_assigned_resources().get("CPU"),
    }


def assert_ray_task(place: dict[str, Any], cpus: float = 1.0) -> None:
    """``place`` is a Ray task in a worker: not this process, not an actor (the coordinator)."""
    assert place["pid"] != os.getpid()
    assert place["task"] is not None
    assert place["actor"] is None
    assert place["cpus"] == cpus


@virtual_actor(num_cpus=0.5)
class Counter:
    def __init__(self, start: int) -> None:
        self.value = start
        self.places: list[dict[str, Any]] = []

    def incr(self, n: int = 1) -> int:
        self.value += n
        self.places.append(where())
        return self.value

    @virtual_actor.readonly
    def get(self) -> int:
        return self.value

    @virtual_actor.readonly
    def read_where(self) -> dict[str, Any]:
        return where()

    @virtual_actor.readonly
    def seen(self) -> list[dict[str, Any]]:
        return list(self.places)

    def fail(self) -> None:
        self.value = -1000
        raise ValueError("refused")

    def slow_incr(self, gate: str, started: str) -> int:
        Path(started).touch()
        deadline = time.monotonic() + 60
        while not os.path.exists(gate):
            assert time.monotonic() < deadline, "the test never opened the gate"
            time.sleep(0.01)
        self.value += 1
        self.places.append(where())
        return self.value

    def incr_crashing_once(self, n: int, marker: str, runs: str) -> int:
        with open(runs, "a") as handle:
            handle.write("run\n")
        if not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)  # the Ray worker dies in the middle of the body, the first time
        self.value += n
        return self.value


@virtual_actor
class Log:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.pids: set[int] = set()

    def append(self, item: Any) -> int:
        self.items.append(item)
        self.pids.add(os.getpid())
        return len(self.items)

    @virtual_actor.readonly
    def all(self) -> tuple[list[Any], set[int]]:
        return list(self.items), set(self.pids)


@workflow.task
def double_where(x: int) -> tuple[int, dict[str, Any]]:
    return 2 * x, where()


@workflow.task
def plus_one(pair: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    return pair[0] + 1, pair[1]


@virtual_actor
class Planner:
    def __init__(self) -> None:
        self.value = 1
        self.body: dict[str, Any] | None = None

    def grow(self) -> Any:
        self.value += 1
        self.body = where()
        return plus_one.bind(double_where.bind(self.value))

    @virtual_actor.readonly
    def state(self) -> tuple[int, dict[str, Any] | None]:
        return self.value, self.body


@pytest.fixture
def url(tmp_path: Path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def wf_ray(url: str) -> Iterator[Any]:
    """The facade on the Ray executor, hence on the Ray runner: the coordinator applies calls."""
    workflow.init(url, executor="ray", cancel_poll=0.05)
    assert workflow.client().runner.name == "ray"
    yield workflow
    workflow.shutdown(wait=False)


def test_the_ray_1x_counter_runs_each_call_as_a_ray_task_with_the_class_options(
    wf: Any,
) -> None:
    assert workflow.client().runner.name == "ray"  # on file and S3 storage
    c = Counter.get_or_create("visits", 0)
    assert c.incr.run(5) == 5
    ref = c.incr.run_async(2)
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == 7
    assert c.get.run() == 7
    assert workflow.get_actor("visits").get.run() == 7
    assert ray.get(c.get.run_async()) == 7
    assert ray.get(c.ready()) is True
    places = c.seen.run()
    assert len(places) == 2
    for place in places:
        assert_ray_task(place, cpus=0.5)
    assert_ray_task(c.read_where.run(), cpus=0.5)  # readonly: a Ray task too
    assert Counter.options(num_cpus=1).get_or_create("visits", 0).incr.run(1) == 8
    assert_ray_task(c.seen.run()[-1], cpus=1.0)
    with pytest.raises(ActorCallError) as caught:
        c.fail.run()
    assert isinstance(caught.value.__cause__, ValueError)
    assert c.get.run() == 8  # the failed call left the state as it was


def test_100_run_async_calls_from_one_thread_return_object_refs_applied_in_order(
    wf_ray: Any,
) -> None:
    log = Log.get_or_create("log")
    refs = [log.append.run_async(i) for i in range(100)]
    assert all(isinstance(ref, ray.ObjectRef) for ref in refs)
    assert ray.get(refs, timeout=120) == list(range(1, 101))
    items, pids = log.all.run()
    assert items == list(range(100))
    assert os.getpid() not in pids
    assert [c.seq for c in actor_calls("log")] == list(range(1, 101))


def test_a_call_sent_through_the_ray_runner_is_drained_by_the_coordinator(wf_ray: Any) -> None:
    c = Counter.get_or_create("inbox", 0)
    assert c.incr.send(3) == 1  # stored; the coordinator is asked to drain, nobody waits
    wait_until(lambda: actor_info("inbox").committed == 1, timeout=30)
    assert c.get.run() == 3
    assert_ray_task(c.seen.run()[0], cpus=0.5)
    assert [(x.seq, x.mode, x.ok) for x in actor_calls("inbox")] == [(1, "send", True)]


def test_a_call_sent_from_a_process_off_ray_is_drained_by_the_coordinator(
    wf_ray: Any, url: str
) -> None:
    c = Counter.get_or_create("hook", 0)
    assert c.incr.run(1) == 1  # the coordinator serves this storage from now on
    with Client(url) as plain:  # a web hook handler's Client: embedded, no Ray
        assert plain.runner.name == "embedded"
        assert get_actor("hook", client=plain).incr.send(10) == 2
    wait_until(lambda: actor_info("hook").committed == 2, timeout=30)  # its scan, every 1 s
    assert c.get.run() == 11
    assert_ray_task(c.seen.run()[1], cpus=0.5)


def test_a_method_returning_a_dag_runs_it_as_a_sub_workflow_of_ray_tasks(wf: Any) -> None:
    planner = Planner.get_or_create("planner")
    value, task_place = planner.grow.run()
    assert value == 5  # (1 + 1) * 2 + 1
    assert_ray_task(task_place)
    assert workflow.get_output("actor.planner.call.1") == (5, task_place)
    state, body_place = planner.state.run()
    assert state == 2
    assert body_place is not None
    assert_ray_task(body_place)


def test_a_client_on_the_ray_executor_drains_here_and_runs_bodies_as_ray_tasks(
    url: str,
) -> None:
    with Client(url, executor="ray") as client:
        assert client.runner.name == "embedded"
        c = Counter.using(client).get_or_create("local", 0)
        future = c.incr.run_async(4)
        assert not isinstance(future, ray.ObjectRef)
        assert future.result(timeout=60) == 4
        assert_ray_task(c.seen.run()[0], cpus=0.5)
        assert actor_info("local", client=client).owner is None


@pytest.mark.slow  # Ray takes seconds to see the dead worker and start another
def test_a_ray_worker_lost_during_a_body_is_retried_and_the_call_applies_once(
    wf_ray: Any, tmp_path: Path
) -> None:
    c = Counter.get_or_create("lost", 0)
    runs = tmp_path / "runs"
    assert c.incr_crashing_once.run(5, str(tmp_path / "marker"), str(runs)) == 5
    assert runs.read_text().splitlines() == ["run", "run"]  # the body ran again, in a new worker
    assert c.get.run() == 5
    assert [(x.seq, x.ok, x.result) for x in actor_calls("lost")] == [(1, True, "5")]


@pytest.mark.slow  # a new coordinator actor is started
def test_a_call_of_a_killed_coordinator_stays_stored_and_the_next_call_applies_it_first(
    wf_ray: Any, tmp_path: Path
) -> None:
    c = Counter.get_or_create("orphan", 0)
    gate, started = tmp_path / "gate", tmp_path / "started"
    ref = c.slow_incr.run_async(str(gate), str(started))
    wait_until(started.exists, timeout=60)
    shutdown_coordinator()  # the writer dies in the middle of the call
    with pytest.raises(ray.exceptions.RayError):
        ray.get(ref, timeout=60)
    assert actor_info("orphan").pending == (1,)
    gate.touch()
    assert c.incr.run(10) == 11  # a new coordinator: the dead writer's lease taken over at once
    assert [(x.seq, x.method, x.ok) for x in actor_calls("orphan")] == [
        (1, "slow_incr", True),
        (2, "incr", True),
    ]
    for place in c.seen.run():
        assert_ray_task(place, cpus=0.5)
