"""Schedules fired by workers under an injected clock: no test sleeps for minutes.

The clock starts at the next whole minute after the schedule is created, so ticks fall at
``BASE + k * 60`` and a test sets "now" to any second it likes.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import wtasks
from wtools import HERE, FakeClock, subprocess_env

from durableflow import Client, WorkflowNotFoundError, WorkflowStatus, workflow
from durableflow.model.schedule import format_tick, tick_workflow_id
from durableflow.worker import Worker

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def base() -> float:
    """The first whole minute after now: the first tick of a per-minute schedule made now."""
    return (math.floor(time.time() / 60) + 1) * 60.0


@pytest.fixture
def storage(tmp_path: Path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def clients(storage: str) -> Iterator[list[Client]]:
    made = [Client(storage, cancel_poll=0.05), Client(storage, cancel_poll=0.05)]
    yield made
    for client in made:
        client.close(wait=False)


def tick_ids(client: Client, name: str = "job") -> list[str]:
    return sorted(w for w, _ in client.list_all() if w.startswith(name + "@"))


def scan(*workers: Worker) -> None:
    for worker in workers:
        worker.run_once()
    for worker in workers:
        assert worker.wait_idle(30)


def logged(path: Path) -> Counter[str]:
    return (
        Counter(line.split()[0] for line in path.read_text().splitlines())
        if path.exists()
        else Counter()
    )


def test_every_minute_two_workers_fire_each_tick_once(tmp_path: Path, clients, base):
    log = tmp_path / "log"
    a, b = clients
    a.schedule(
        "job",
        functools.partial(wtasks.tick_dag, str(log)),
        cron="* * * * *",
        metadata={"team": "x"},
    )
    clock = FakeClock(base - 1)
    workers = [Worker(a, clock=clock), Worker(b, clock=clock)]
    scan(*workers)
    assert tick_ids(a) == []
    for minute in range(10):
        clock.now = base + minute * 60 + 0.5
        scan(*workers)
        scan(*reversed(workers))  # a second look at the same minute fires nothing more
    expected = [tick_workflow_id("job", base + m * 60) for m in range(10)]
    assert tick_ids(a) == expected
    assert {a.get_status(w) for w in expected} == {WorkflowStatus.SUCCESSFUL}
    assert logged(log) == {format_tick(base + m * 60): 1 for m in range(10)}
    meta = a.get_metadata(expected[3])["user_metadata"]
    assert meta == {"team": "x", "schedule": "job", "scheduled_time": format_tick(base + 180)}
    info = b.get_schedule("job")
    assert (info["fired"], info["missed"], info["last_workflow_id"]) == (10, 0, expected[-1])
    assert info["next_tick"] == format_tick(base + 600)


@pytest.mark.parametrize(
    ("catchup", "grace", "expected_ticks"),
    [("skip", 10, []), ("skip", 60, [60]), ("latest", 60, [60])],
)
def test_missed_ticks_while_no_worker_ran(tmp_path, clients, base, catchup, grace, expected_ticks):
    a, _ = clients
    a.schedule(
        "job",
        functools.partial(wtasks.tick_dag, str(tmp_path / "log")),
        every=60,
        catchup=catchup,
        grace=grace,
    )
    clock = FakeClock(base + 60 * 60 + 30)  # an hour later, 30 s after the newest tick
    scan(Worker(a, clock=clock))
    assert tick_ids(a) == [tick_workflow_id("job", base + k * 60) for k in expected_ticks]
    assert a.get_schedule("job")["missed"] == 61 - len(expected_ticks)


@pytest.mark.parametrize(("overlap", "runs"), [("allow", 5), ("skip", 1)])
def test_missed_ticks_run_all(tmp_path, clients, base, overlap, runs):
    a, _ = clients
    a.schedule(
        "job",
        functools.partial(wtasks.tick_dag, str(tmp_path / "log")),
        every=timedelta(minutes=1),
        catchup="all",
        max_catchup=5,
        overlap=overlap,
    )
    scan(Worker(a, clock=FakeClock(base + 60 * 60 + 30)))
    newest_five = [tick_workflow_id("job", base + k * 60) for k in range(56, 61)]
    assert tick_ids(a) == newest_five[:runs]
    assert {a.get_status(w) for w in tick_ids(a)} == {WorkflowStatus.SUCCESSFUL}


@pytest.mark.parametrize("overlap", ["skip", "allow"])
def test_overlap_policy(tmp_path, clients, base, overlap):
    a, _ = clients
    go = tmp_path / "go"
    a.schedule(
        "job",
        functools.partial(wtasks.slow_tick_dag, str(go), str(tmp_path / "log")),
        every=60,
        overlap=overlap,
    )
    clock = FakeClock(base + 1)
    worker = Worker(a, clock=clock)
    worker.run_once()  # tick 0 starts and blocks
    first = tick_workflow_id("job", base)
    assert worker.running == [first]
    clock.now = base + 61
    worker.run_once()  # tick 1 comes while tick 0 runs
    second = tick_workflow_id("job", base + 60)
    if overlap == "skip":
        assert tick_ids(a) == [first] and a.get_schedule("job")["missed"] == 1
    else:
        assert tick_ids(a) == [first, second] and sorted(worker.running) == [first, second]
    go.touch()
    assert worker.wait_idle(30)
    clock.now = base + 121
    scan(worker)
    third = tick_workflow_id("job", base + 120)
    assert tick_ids(a) == ([first, third] if overlap == "skip" else [first, second, third])


KILL_POINTS = {
    "after deciding the tick": {"op": "swap", "key": "schedules/job/state"},
    "after claiming the tick's id": {"op": "create", "key": "/lease"},
    "after writing the tick's specs": {"op": "create", "key": "/specs/root"},
    "after storing the tick PENDING": {"op": "create", "key": "/run"},
}


@pytest.mark.parametrize("kill", list(KILL_POINTS.values()), ids=list(KILL_POINTS))
def test_worker_killed_in_the_middle_of_a_tick(tmp_path, storage, clients, base, kill):
    a, _ = clients
    log = tmp_path / "log"
    a.schedule("job", functools.partial(wtasks.tick_dag, str(log)), every=60)
    now = base + 5
    cfg = {"storage": storage, "now": now, "kill": kill}
    done = subprocess.run(
        [sys.executable, str(HERE / "worker_prog.py"), json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
    )
    assert done.returncode == -9, (done.returncode, done.stdout, done.stderr)
    restarted = Worker(a, clock=FakeClock(now))
    scan(restarted)
    scan(restarted)
    tick = tick_workflow_id("job", base)
    assert tick_ids(a) == [tick]
    assert a.get_status(tick) is WorkflowStatus.SUCCESSFUL
    assert logged(log) == {format_tick(base): 1}
    info = a.get_schedule("job")
    assert info["pending"] == [] and info["fired"] == 1


def test_pause_then_resume_skips_the_ticks_missed_while_paused(tmp_path, clients, base):
    a, _ = clients
    a.schedule("job", functools.partial(wtasks.tick_dag, str(tmp_path / "log")), every=60)
    a.pause_schedule("job")
    assert a.get_schedule("job")["paused"] and a.get_schedule("job")["next_tick"] is None
    clock = FakeClock(base + 600)
    scan(Worker(a, clock=clock))
    assert tick_ids(a) == []
    a.scheduler.set_paused("job", False, now=clock.now)  # what resume_schedule does at real time
    assert not a.get_schedule("job")["paused"]
    scan(Worker(a, clock=clock))
    assert tick_ids(a) == []  # the ten ticks missed while paused are not replayed
    clock.advance(60)
    scan(Worker(a, clock=clock))
    assert tick_ids(a) == [tick_workflow_id("job", base + 660)]


def test_failing_factory_is_reported_and_replacing_it_fixes_the_next_tick(tmp_path, clients, base):
    a, _ = clients
    a.schedule("job", wtasks.broken_factory, every=60)
    clock = FakeClock(base + 1)
    scan(Worker(a, clock=clock))
    info = a.get_schedule("job")
    assert (
        tick_ids(a) == []
        and "cannot build today's DAG" in info["last_error"]
        and info["pending"] == []
    )
    a.schedule(
        "job", functools.partial(wtasks.tick_dag, str(tmp_path / "log")), every=60, replace=True
    )
    clock.now = base + 61
    scan(Worker(a, clock=clock))
    assert tick_ids(a) == [tick_workflow_id("job", base + 60)]


def test_schedule_management_errors(tmp_path, wf):
    dag = wtasks.record.bind(str(tmp_path / "log"), "fixed", 1)
    info = workflow.schedule("fixed", dag, every=timedelta(hours=1))
    assert (
        info["schedule"] == "every 1h" and info["catchup"] == "latest" and info["overlap"] == "skip"
    )
    with pytest.raises(ValueError, match="exists"):
        workflow.schedule("fixed", dag, every=60)
    with pytest.raises(ValueError, match="exactly one of"):
        workflow.schedule("other", dag)
    with pytest.raises(ValueError, match="invalid cron expression"):
        workflow.schedule("other", dag, cron="61 * * * *")
    with pytest.raises(TypeError, match="needs a DAG"):
        workflow.schedule("other", 42, every=60)
    client = workflow.client()
    assert [s["name"] for s in client.list_schedules()] == ["fixed"]
    client.remove_schedule("fixed")
    assert client.list_schedules() == []
    with pytest.raises(WorkflowNotFoundError, match="no schedule"):
        client.get_schedule("fixed")


def test_every_face_takes_the_schedule_options_as_defined_once(tmp_path, clients):
    """Client.schedule, `schedule add` and the description agree with ScheduleOptions."""
    import dataclasses
    import inspect

    from durableflow.cli.schedules import add as add_command
    from durableflow.model.schedule import ScheduleOptions

    defaults = ScheduleOptions()
    signature = inspect.signature(Client.schedule).parameters
    for name in ScheduleOptions.names():
        assert signature[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert signature[name].default == getattr(defaults, name)
    flags = {p.name: p for p in add_command.params}
    for field in dataclasses.fields(ScheduleOptions):
        assert flags[field.name].help == field.metadata["help"]
    assert flags["timezone"].opts == ["--timezone", "--tz"]
    assert list(flags["catchup"].type.choices) == ["skip", "latest", "all"]
    assert (flags["grace"].default, flags["max_catchup"].default) == ("60s", 100)

    a, _ = clients
    dag = wtasks.record.bind(str(tmp_path / "log"), "x", 1)
    info = a.schedule("opts", dag, every=60, timezone="Europe/Paris", catchup="all", grace=5)
    chosen = ScheduleOptions(timezone="Europe/Paris", catchup="all", grace=5)
    assert {name: info[name] for name in ScheduleOptions.names()} == chosen.as_dict()
    assert a.scheduler.get("opts").options() == chosen
