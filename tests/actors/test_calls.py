"""Mutating calls on every backend: order, exclusion across processes, readonly, sub-workflows."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from actor_classes import Effects, Log, Planner

from durableflow import Client, WorkflowStatus
from helpers import wait_until

PROG = str(Path(__file__).with_name("actor_prog.py"))


def test_100_run_async_calls_from_one_thread_apply_in_submission_order(client: Client) -> None:
    log = Log.using(client).get_or_create("log")
    futures = [log.append.run_async(i) for i in range(100)]
    assert [f.result(timeout=120) for f in futures] == list(range(1, 101))
    assert log.all.run() == list(range(100))


def test_threads_calls_each_apply_once_and_each_thread_keeps_its_order(client: Client) -> None:
    log = Log.using(client).get_or_create("log")

    def submit(thread: int) -> None:
        for i in range(10):
            log.append.run((thread, i))

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    items = log.all.run()
    assert sorted(items) == [(t, i) for t in range(4) for i in range(10)]
    for t in range(4):
        assert [i for (th, i) in items if th == t] == list(range(10))


def test_four_processes_incrementing_at_once_total_exactly_their_calls(
    client: Client, storage_url: str, tmp_path: Path, child_env: dict[str, str]
) -> None:
    """4 processes x 50 calls, started together on one actor; x 20 on S3, where each call is
    several requests to the server (4 x 50 took 15-21 s there, 4 x 20 takes 6-9 s)."""
    n = 20 if storage_url.startswith("s3://") else 50
    go = tmp_path / "go"
    config = {"storage": storage_url, "actor_id": "shared", "op": "incr", "n": n, "go": str(go)}
    from actor_classes import Counter

    counter = Counter.using(client).get_or_create("shared", 0)
    procs = [
        subprocess.Popen(
            [sys.executable, PROG, json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
        )
        for _ in range(4)
    ]
    go.touch()
    results: list[int] = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results += json.loads(out.strip().splitlines()[-1])["results"]
    assert counter.get.run() == 4 * n
    assert sorted(results) == list(range(1, 4 * n + 1))  # every call saw its own increment


def test_readonly_during_a_slow_mutating_call_returns_the_old_value(
    client: Client, tmp_path: Path
) -> None:
    actor = Effects.using(client).get_or_create("slow", str(tmp_path / "log"))
    actor.incr.run(5)
    gate, started = tmp_path / "gate", tmp_path / "started"
    future = actor.slow_incr.run_async(str(gate), str(started))
    wait_until(started.exists)
    assert actor.get.run() == 5  # the committed state, at once, while the call runs
    assert actor.get.run_async().result(timeout=30) == 5
    assert not future.done()
    gate.touch()
    assert future.result(timeout=60) == 6
    assert actor.get.run() == 6


def test_a_method_returning_a_dag_runs_it_as_a_sub_workflow(client: Client) -> None:
    planner = Planner.using(client).get_or_create("planner")
    assert planner.grow.run() == 2 * 2 + 1
    assert planner.grow.run() == 2 * 3 + 1
    assert planner.get.run() == 3
    assert client.get_status("actor.planner.call.1") is WorkflowStatus.SUCCESSFUL
    assert client.get_output("actor.planner.call.2") == 7
