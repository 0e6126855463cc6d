"""``durableflow worker`` as a real process: crash recovery, races, the shared limit, SIGTERM.

Tasks log ``<label> <pid>`` lines, so the tests count how often each task ran and where.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import wtasks
from wtools import HERE, Workers, durableflow_command, subprocess_env

from durableflow import Client, WorkflowStatus, workflow
from helpers import wait_until

pytestmark = pytest.mark.timeout(120)


def log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def start_and_kill(tmp_path: Path, storage: str, ids: list[str]) -> dict[str, str]:
    """Run workflows in a subprocess until each waits in its t2, then SIGKILL it."""
    started = tmp_path / "started"
    started.mkdir()
    cfg = {
        "storage": storage,
        "ids": ids,
        "go": str(tmp_path / "go"),
        "started_dir": str(started),
        "log": str(tmp_path / "log"),
    }
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "run_prog.py"), json.dumps(cfg)],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: len(list(started.iterdir())) == len(ids) or proc.poll() is not None, timeout=60
        )
        assert proc.poll() is None, proc.communicate()
    finally:
        proc.kill()
        proc.wait()
    return cfg


def statuses(storage: str) -> dict[str, WorkflowStatus]:
    with Client(storage) as client:
        return dict(client.list_all())


def test_worker_finishes_the_workflow_of_a_killed_process(tmp_path: Path, workers: Workers):
    storage = str(tmp_path / "store")
    cfg = start_and_kill(tmp_path, storage, ["crashed"])
    assert statuses(storage) == {"crashed": WorkflowStatus.RESUMABLE}
    Path(cfg["go"]).touch()
    proc = workers.start(storage)
    wait_until(lambda: statuses(storage) == {"crashed": WorkflowStatus.SUCCESSFUL}, timeout=30)
    with Client(storage) as client:
        assert client.get_output("crashed") == 2
    lines = Counter(line.rsplit(" ", 1)[0] for line in log_lines(tmp_path / "log"))
    assert lines == {"crashed t1": 1, "crashed t2": 1}  # t1 was checkpointed before the crash
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "started workflow crashed" in workers.log(proc)


def test_two_workers_run_each_of_twenty_resumable_workflows_once(tmp_path: Path, workers: Workers):
    storage = str(tmp_path / "store")
    ids = [f"wf{i:02d}" for i in range(20)]
    cfg = start_and_kill(tmp_path, storage, ids)
    assert set(statuses(storage).values()) == {WorkflowStatus.RESUMABLE}
    Path(cfg["go"]).touch()
    first = workers.start(storage, "--concurrency", "20")
    second = workers.start(storage, "--concurrency", "20")
    wait_until(lambda: set(statuses(storage).values()) == {WorkflowStatus.SUCCESSFUL}, timeout=60)
    lines = [line.rsplit(" ", 1) for line in log_lines(tmp_path / "log")]
    ran = Counter(label for label, _ in lines)
    assert ran == {**{f"{w} t1": 1 for w in ids}, **{f"{w} t2": 1 for w in ids}}
    worker_pids = {str(first.pid), str(second.pid)}
    assert {pid for label, pid in lines if label.endswith("t2")} <= worker_pids
    with Client(storage) as client:
        assert [client.get_output(w) for w in ids] == [2] * 20


def test_max_running_workflows_holds_across_two_workers(tmp_path: Path, workers: Workers):
    storage = str(tmp_path / "store")
    running, counts = tmp_path / "running", tmp_path / "counts"
    running.mkdir()
    with Client(storage) as client:
        for i in range(8):
            client.submit(
                wtasks.guarded.bind(str(running), str(counts), 2, f"g{i}", 0.3), workflow_id=f"g{i}"
            )
        assert {s for _, s in client.list_all()} == {WorkflowStatus.PENDING}
    workers.start(storage, "--max-running-workflows", "2", "--concurrency", "4")
    workers.start(storage, "--max-running-workflows", "2", "--concurrency", "4")
    wait_until(lambda: set(statuses(storage).values()) == {WorkflowStatus.SUCCESSFUL}, timeout=60)
    seen = [int(n) for n in log_lines(counts)]
    assert len(seen) == 8
    assert max(seen) == 2  # the limit was reached, never passed (a third would have FAILED)


def test_sigterm_waits_for_a_task_that_finishes_within_the_grace(tmp_path: Path, workers: Workers):
    storage = str(tmp_path / "store")
    go, log = tmp_path / "go", tmp_path / "log"
    with Client(storage) as client:
        client.submit(
            wtasks.wait_for.bind(str(go), str(tmp_path / "started"), str(log), "t", 1),
            workflow_id="graceful",
        )
    proc = workers.start(storage, "--grace", "30s")
    wait_until(lambda: (tmp_path / "started").exists(), timeout=30)
    proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "received SIGTERM" in workers.log(proc), timeout=30)
    assert proc.poll() is None  # inside its grace period, waiting for the blocked task
    go.touch()
    assert proc.wait(timeout=30) == 0
    assert statuses(storage) == {"graceful": WorkflowStatus.SUCCESSFUL}


def test_sigterm_leaves_a_long_workflow_resumable_and_another_worker_finishes_it(
    tmp_path: Path, workers: Workers
):
    storage = str(tmp_path / "store")
    go, log = tmp_path / "go", tmp_path / "log"
    with Client(storage) as client:
        first = wtasks.record.options(task_id="first").bind(str(log), "first", 1)
        client.submit(
            wtasks.wait_for.options(task_id="long").bind(
                str(go), str(tmp_path / "started"), str(log), "long", first
            ),
            workflow_id="long",
        )
    proc = workers.start(storage, "--grace", "0.2s")
    wait_until(lambda: (tmp_path / "started").exists(), timeout=30)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert statuses(storage) == {"long": WorkflowStatus.RESUMABLE}
    assert "left RESUMABLE: long" in workers.log(proc)
    go.touch()
    workers.start(storage)
    wait_until(lambda: statuses(storage) == {"long": WorkflowStatus.SUCCESSFUL}, timeout=30)
    assert Counter(line.split()[0] for line in log_lines(log)) == {"first": 1, "long": 1}


def test_detached_submission_from_a_program_that_exits(tmp_path: Path, workers: Workers):
    storage = str(tmp_path / "store")
    program = tmp_path / "submitter.py"
    program.write_text(
        textwrap.dedent(f"""
        from durableflow import workflow

        @workflow.task
        def double(x):
            return 2 * x

        @workflow.task
        def plus(a, b):
            return a + b

        if __name__ == "__main__":
            workflow.init({storage!r})
            future = workflow.run_async(plus.bind(double.bind(3), 4), workflow_id="detached", detached=True)
            print(future.result(), workflow.get_status("detached").value)
    """)
    )
    done = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["detached", "PENDING"]
    workers.start(storage)  # cannot import submitter.py: the functions travel pickled by value
    wait_until(lambda: statuses(storage) == {"detached": WorkflowStatus.SUCCESSFUL}, timeout=30)
    with Client(storage) as client:
        assert client.get_output("detached") == 10


def test_no_resume_leaves_resumable_workflows_alone(tmp_path: Path):
    storage = str(tmp_path / "store")
    cfg = start_and_kill(tmp_path, storage, ["crashed"])
    Path(cfg["go"]).touch()
    with Client(storage) as client:
        client.submit(wtasks.record.bind(str(tmp_path / "log"), "fresh", 7), workflow_id="fresh")
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("durableflow")),
            "--storage",
            storage,
            "worker",
            "--once",
            "--no-resume",
            "--path",
            str(HERE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr
    assert statuses(storage) == {
        "crashed": WorkflowStatus.RESUMABLE,
        "fresh": WorkflowStatus.SUCCESSFUL,
    }


def test_in_process_worker_api(tmp_path: Path):
    from durableflow.worker import Worker

    with Client(str(tmp_path / "store")) as client:
        for i in range(3):
            workflow_id = client.run_async(
                wtasks.record.bind(str(tmp_path / "log"), f"w{i}", i),
                workflow_id=f"w{i}",
                detached=True,
            ).result()
            assert workflow_id == f"w{i}"
        runner = Worker(client, max_running_workflows=1)
        assert runner.run_once() == ["w0"]
        assert runner.wait_idle(30)
        assert runner.run_once() == ["w1"]
        assert runner.wait_idle(30)
        assert runner.run_once() == ["w2"]
        assert runner.wait_idle(30)
        assert runner.run_once() == []
        assert runner.shutdown(1.0) == []
        assert [client.get_output(f"w{i}") for i in range(3)] == [0, 1, 2]


def test_facade_submit_returns_the_id(tmp_path: Path, wf):
    workflow_id = workflow.submit(
        wtasks.record.bind(str(tmp_path / "log"), "x", 1), workflow_id="sub"
    )
    assert workflow_id == "sub"
    assert workflow.get_status("sub") is WorkflowStatus.PENDING
    assert (
        workflow.submit(wtasks.record.bind(str(tmp_path / "log"), "y", 2), workflow_id="sub")
        == "sub"
    )
    assert workflow.get_metadata("sub")["status"] == "PENDING"


# --- heartbeats: which workers serve a storage (issue 10.19) ------------------------------------


def _heartbeat_keys(storage: str) -> list[str]:
    from durableflow.storage import layout
    from durableflow.storage.urls import open_storage

    opened = open_storage(storage)
    try:
        return opened.list(layout.workers_prefix())
    finally:
        opened.close()


def _live(storage: str) -> list[dict]:
    from durableflow.runtime.workers import live_workers
    from durableflow.storage.urls import open_storage

    opened = open_storage(storage)
    try:
        return live_workers(opened)
    finally:
        opened.close()


def test_a_serving_worker_is_seen_and_sigterm_removes_its_heartbeat(
    tmp_path: Path, workers: Workers
):
    storage = str(tmp_path / "store")
    Client(storage).close()
    assert _live(storage) == []
    proc = workers.start(storage)
    wait_until(lambda: [w["pid"] for w in _live(storage)] == [proc.pid], timeout=30)
    (seen,) = _live(storage)
    assert seen["host"] and seen["expires_at"] > time.time()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert _heartbeat_keys(storage) == []  # step 3: deleted on a clean exit


def test_a_killed_workers_heartbeat_is_ignored_at_once_and_pruned_by_the_next(
    tmp_path: Path, workers: Workers
):
    storage = str(tmp_path / "store")
    Client(storage).close()
    first = workers.start(storage)
    wait_until(lambda: [w["pid"] for w in _live(storage)] == [first.pid], timeout=30)
    first.kill()
    first.wait()
    (left,) = _heartbeat_keys(storage)  # a killed worker cannot delete its record...
    assert _live(storage) == []  # ...but its process is gone: not counted, before any expiry
    second = workers.start(storage)
    wait_until(lambda: [w["pid"] for w in _live(storage)] == [second.pid], timeout=30)
    assert left not in _heartbeat_keys(storage)  # step 1 of the next worker pruned it
    assert len(_heartbeat_keys(storage)) == 1


def test_heartbeat_beats_survive_a_failed_write_and_stop_deletes_the_record(tmp_path: Path):
    from durableflow.model.ownership import LeaseRecord
    from durableflow.runtime.workers import WorkerHeartbeat, live_workers
    from durableflow.storage.memory import MemoryStorage
    from durableflow.testing import FaultyStorage

    storage = FaultyStorage(MemoryStorage())
    beat = WorkerHeartbeat(storage, ttl=0.3)
    fault = storage.inject("put", nth=2, key="/workers/", error=True)  # the first renewal fails
    beat.start()
    try:
        assert [w["owner"] for w in live_workers(storage)] == [beat.owner]  # step 1
        first = LeaseRecord.from_bytes(storage.get(beat.key))
        wait_until(lambda: LeaseRecord.from_bytes(storage.get(beat.key)).seq >= first.seq + 2)
        later = LeaseRecord.from_bytes(storage.get(beat.key))
        assert later.expires_at > first.expires_at  # step 2 went on after the failed write
        assert fault.fired == 1
    finally:
        beat.stop()
    assert storage.get(beat.key) is None  # step 3
    assert live_workers(storage) == []
    beat.stop()  # idempotent


def test_live_workers_judges_other_machines_by_expiry_and_skips_garbled_records():
    from durableflow.model.ownership import LeaseRecord
    from durableflow.runtime.ownership import Identity
    from durableflow.runtime.workers import live_workers
    from durableflow.storage import layout
    from durableflow.storage.memory import MemoryStorage

    storage = MemoryStorage()
    elsewhere = Identity("another-machine", "another-boot", 4026531836)
    fresh = LeaseRecord("w-fresh", "hostA", 10, "1", time.time() + 60, ttl=15.0)
    stale = LeaseRecord("w-stale", "hostB", 11, "1", time.time() - 3600, ttl=15.0)
    storage.put(layout.worker_key("w-fresh"), fresh.to_bytes())
    storage.put(layout.worker_key("w-stale"), stale.to_bytes())
    storage.put(layout.worker_key("w-garbled"), b"{not json")
    assert live_workers(storage, identity=elsewhere) == [
        {"owner": "w-fresh", "host": "hostA", "pid": 10, "expires_at": fresh.expires_at}
    ]


def test_in_process_worker_heartbeat_follows_serve_and_shutdown(tmp_path: Path):
    from durableflow.runtime.workers import live_workers
    from durableflow.worker import Worker

    with Client(str(tmp_path / "store")) as client:
        runner = Worker(client, poll_interval=0.05, heartbeat_ttl=0.6)
        thread = threading.Thread(target=runner.serve)
        thread.start()
        try:
            wait_until(lambda: len(live_workers(client.storage)) == 1)
            assert live_workers(client.storage)[0]["owner"] == runner.heartbeat.owner
        finally:
            runner.shutdown(1.0)
            thread.join(10)
        assert live_workers(client.storage) == []
        assert client.storage.list("v1/workers/") == []


def test_submit_warns_only_when_no_worker_heartbeat_is_seen(tmp_path: Path, caplog):
    """Client.submit (wired by the engine side) says when nothing would run the workflow."""
    import logging

    from durableflow.runtime.workers import WorkerHeartbeat

    log = str(tmp_path / "log")
    with Client(str(tmp_path / "store")) as client:
        with caplog.at_level(logging.WARNING, logger="durableflow"):
            client.submit(wtasks.record.bind(log, "a", 1), workflow_id="alone")
        warned = [r for r in caplog.records if "no durableflow worker seen" in r.getMessage()]
        assert len(warned) == 1 and "durableflow worker" in warned[0].getMessage()
        assert client.get_status("alone") is WorkflowStatus.PENDING  # stored all the same
        beat = WorkerHeartbeat(client.storage)
        beat.start()
        try:
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="durableflow"):
                client.submit(wtasks.record.bind(log, "b", 2), workflow_id="served")
            assert not [r for r in caplog.records if "no durableflow worker" in r.getMessage()]
        finally:
            beat.stop()


def test_a_heartbeat_whose_delete_failed_reads_gone_once_it_expires():
    from durableflow.runtime.workers import WorkerHeartbeat, live_workers
    from durableflow.storage.memory import MemoryStorage
    from durableflow.testing import FaultyStorage

    storage = FaultyStorage(MemoryStorage())
    beat = WorkerHeartbeat(storage, ttl=0.5)
    beat.start()
    assert len(live_workers(storage)) == 1
    fault = storage.inject("delete", key="/workers/", error=True)
    beat.stop()  # step 3 fails: logged, not raised
    assert fault.fired == 1 and storage.get(beat.key) is not None
    # This process lives on, so only the expiry ends the record's life: no renewal came.
    wait_until(lambda: live_workers(storage) == [], timeout=10)
    assert storage.get(beat.key) is not None  # readers never delete
    again = WorkerHeartbeat(storage, ttl=0.5)
    again.start()  # step 1 of the next worker prunes it
    try:
        assert storage.list("v1/workers/") == [again.key]
    finally:
        again.stop()


# --- background prune by the stored retention policy ----------------------------------------------
DAY = 86400.0


def _finished_runs(client: Client, log: str, ids: list[str]) -> None:
    for workflow_id in ids:
        assert client.run(wtasks.record.bind(log, workflow_id, 1), workflow_id=workflow_id) == 1


def test_worker_prunes_by_the_stored_policy_every_period_at_a_bounded_rate(tmp_path: Path):
    from wtools import FakeClock

    from durableflow.worker import Worker

    log = str(tmp_path / "log")
    with Client(str(tmp_path / "store")) as client:
        _finished_runs(client, log, ["old1", "old2"])
        client.submit(wtasks.record.bind(log, "queued", 2), workflow_id="queued")
        calls: list[dict[str, object]] = []
        real_prune = client.prune

        def prune(**kwargs: object) -> object:
            calls.append(kwargs)
            return real_prune(**kwargs)  # type: ignore[arg-type]

        client.prune = prune  # type: ignore[method-assign]
        clock = FakeClock(time.time())
        runner = Worker(client, schedules=False, clock=clock, prune_every=300)
        runner.run_once()  # no policy: nothing pruned, no prune call
        assert runner.wait_prune(30) and calls == []
        assert runner.wait_idle(30) and client.get_status("queued") is WorkflowStatus.SUCCESSFUL
        client.set_retention({"SUCCESSFUL": "30d"})
        clock.advance(300)
        runner.run_once()
        assert runner.wait_prune(30)
        assert [c["rate"] for c in calls] == [20.0]  # due, but nothing is 30 days old yet
        assert statuses(str(tmp_path / "store")) == {
            "old1": WorkflowStatus.SUCCESSFUL,
            "old2": WorkflowStatus.SUCCESSFUL,
            "queued": WorkflowStatus.SUCCESSFUL,
        }
        clock.advance(31 * DAY)
        runner.run_once()
        assert runner.wait_prune(30)
        assert len(calls) == 2 and calls[1]["now"] == clock.now  # ages on the worker's clock
        assert client.list_all() == []
        _finished_runs(client, log, ["young"])
        clock.advance(299)  # within the period: no prune even on a later clock
        runner.run_once()
        assert runner.wait_prune(30) and len(calls) == 2
        assert runner.shutdown(1.0) == []


def test_a_failed_background_prune_is_logged_and_the_worker_goes_on(tmp_path: Path, caplog):
    import logging

    from wtools import FakeClock

    from durableflow.errors import StorageError
    from durableflow.worker import Worker

    log = str(tmp_path / "log")
    with Client(str(tmp_path / "store")) as client:
        client.set_retention({"FAILED": "1d"})
        failures = iter([StorageError("storage unreachable"), RuntimeError("bug")])

        def prune(**kwargs: object) -> object:
            raise next(failures)

        client.prune = prune  # type: ignore[method-assign]
        clock = FakeClock(time.time())
        runner = Worker(client, schedules=False, clock=clock, prune_every=60)
        with caplog.at_level(logging.WARNING, logger="durableflow"):
            for i in range(2):
                client.submit(wtasks.record.bind(log, f"w{i}", i), workflow_id=f"w{i}")
                assert runner.run_once() == [f"w{i}"]  # the prune failing never stops a start
                assert runner.wait_prune(30) and runner.wait_idle(30)
                clock.advance(60)
        warned = [r.getMessage() for r in caplog.records if "background prune failed" in r.message]
        assert len(warned) == 2
        assert "StorageError" in warned[0] and "storage unreachable" in warned[0]
        assert "RuntimeError: bug" in warned[1]
        assert [client.get_output(f"w{i}") for i in range(2)] == [0, 1]
        assert runner.shutdown(1.0) == []


def test_prune_every_zero_never_prunes(tmp_path: Path):
    from wtools import FakeClock

    from durableflow.worker import Worker

    with Client(str(tmp_path / "store")) as client:
        _finished_runs(client, str(tmp_path / "log"), ["done"])
        client.set_retention({"SUCCESSFUL": "1d"})
        clock = FakeClock(time.time() + 2 * DAY)
        runner = Worker(client, schedules=False, clock=clock, prune_every=0)
        runner.run_once()
        assert runner.wait_prune(30)
        assert client.get_status("done") is WorkflowStatus.SUCCESSFUL
        assert runner.prune_once() is not None  # the same call, run by hand, deletes it
        assert client.list_all() == []
        with pytest.raises(ValueError):
            Worker(client, prune_every=-1)


def test_cli_worker_once_applies_the_policy(tmp_path: Path):
    storage = str(tmp_path / "store")
    with Client(storage) as client:
        _finished_runs(client, str(tmp_path / "log"), ["done"])
        client.set_retention({"SUCCESSFUL": "0s"})  # the subprocess ages on the real clock
    off = subprocess.run(
        [*durableflow_command(), "--storage", storage, "worker", "--once", "--prune-every", "0"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert off.returncode == 0, off.stderr
    assert statuses(storage) == {"done": WorkflowStatus.SUCCESSFUL}
    done = subprocess.run(
        [*durableflow_command(), "--storage", storage, "worker", "--once"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "background prune: deleted 1 of 1 selected" in done.stderr
    assert statuses(storage) == {}
