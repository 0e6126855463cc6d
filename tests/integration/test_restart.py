"""Restart in place (runtime/restart.py): exactly the right tasks run again; kills at each step.

Each task appends its name to a log, so the tests count how often each one ran. Run as a
script, this file is also the program the kill tests SIGKILL (``python test_restart.py CONFIG``):
it runs a chain to SUCCESSFUL, then restarts, forks or prunes it on a storage that kills the
process at one chosen operation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from durableflow import Client, workflow
from durableflow.storage.urls import open_storage
from durableflow.testing.faults import FaultyStorage, kill_this_process

PROG = str(Path(__file__).resolve())


def _log(path: str, name: str) -> None:
    with open(path, "a") as handle:
        handle.write(name + "\n")


def counts(path: str | Path) -> dict[str, int]:
    """How many times each task ran."""
    out: dict[str, int] = {}
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            out[line] = out.get(line, 0) + 1
    return out


@workflow.task
def step(name: str, value: int, log: str, bump_file: str = "", fail_file: str = "") -> int:
    """Logs its name; adds the number in ``bump_file`` (the "code" a test changes)."""
    _log(log, name)
    if fail_file and os.path.exists(fail_file):
        os.unlink(fail_file)
        raise RuntimeError(f"{name} fails once")
    bump = int(Path(bump_file).read_text()) if bump_file else 0
    return value + 1 + bump


@workflow.task
def noisy(name: str, value: int, log: str, fail_file: str = "") -> int:
    """Prints which run of it this is (as counted in ``log``); fails once if ``fail_file`` is."""
    _log(log, name)
    print(f"{name} run {counts(log)[name]}")
    if fail_file and os.path.exists(fail_file):
        os.unlink(fail_file)
        raise RuntimeError(f"{name} fails once")
    return value + 1


@workflow.task
def join(*values: int, log: str) -> int:
    _log(log, "join")
    return sum(values)


@workflow.task
def outer(value: int, log: str) -> Any:
    """Continues into c1 -> c2 -> c3."""
    _log(log, "outer")
    c1 = step.options(task_id="c1").bind("c1", value, log)
    c2 = step.options(task_id="c2").bind("c2", c1, log)
    return workflow.continuation(step.options(task_id="c3").bind("c3", c2, log))


@workflow.task
def wait_for(started: str, gate: str) -> int:
    """Runs until ``gate`` exists (a RUNNING workflow for the tests)."""
    Path(started).touch()
    while not os.path.exists(gate):
        threading.Event().wait(0.01)
    return 1


def chain(log: str, bump_file: str = "", fail_file: str = "") -> Any:
    t1 = step.options(task_id="t1").bind("t1", 0, log)
    t2 = step.options(task_id="t2").bind("t2", t1, log, bump_file)
    t3 = step.options(task_id="t3").bind("t3", t2, log, "", fail_file)
    return step.options(task_id="t4").bind("t4", t3, log)


# --- the kill program -----------------------------------------------------------------------
def main() -> None:
    """Run a chain to SUCCESSFUL, then restart, fork or prune it, killed at ``config["kill"]``."""
    config = json.loads(sys.argv[1])
    with Client(config["storage"]) as client:
        assert client.run(chain(config["log"]), workflow_id="w") == 4
    storage = FaultyStorage(open_storage(config["storage"]))
    kill = config["kill"]
    hook = {kill.get("when", "after"): kill_this_process}
    storage.inject(kill["op"], key=kill["key"], nth=kill.get("nth", 1), **hook)
    with Client(storage) as client:
        if config["mode"] == "restart":
            from durableflow.runtime.restart import restart

            restart(client.store, client.leases, "w", ["t2"])
        elif config["mode"] == "fork":
            from durableflow.runtime.fork import fork

            fork(client.store, client.leases, "w", "w2", from_task="t3")
        else:
            from durableflow.runtime.retention import prune, set_retention

            set_retention(client.store, {"SUCCESSFUL": "0s"})
            prune(client.store, client.leases)
    print("not killed", flush=True)


def run_killed(storage_url: str, tmp_path: Path, mode: str, kill: dict[str, Any]) -> str:
    """Run the program until its kill; return the log path."""
    log = str(tmp_path / "log")
    config = {"storage": storage_url, "log": log, "mode": mode, "kill": kill}
    proc = subprocess.run(
        [sys.executable, PROG, json.dumps(config)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    return log


if __name__ == "__main__":
    main()
    raise SystemExit(0)

# --- tests ----------------------------------------------------------------------------------
import pytest  # noqa: E402

from durableflow import WorkflowStatus  # noqa: E402
from durableflow.errors import (  # noqa: E402
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowStillActiveError,
)
from durableflow.runtime.logs import get_logs  # noqa: E402
from durableflow.runtime.restart import (  # noqa: E402
    finish_restart,
    restart,
    restart_history,
)
from durableflow.storage import layout  # noqa: E402
from helpers import wait_until  # noqa: E402


def recover(client: Client, workflow_id: str) -> bool:
    """What the Launcher's resume does under the lease (the wiring the lead adds)."""
    client.leases.claim(workflow_id, lambda: None)
    try:
        return finish_restart(client.store, workflow_id)
    finally:
        client.leases.release(workflow_id)


def test_restart_from_a_middle_task_of_a_chain(client, tmp_path):
    log = str(tmp_path / "log")
    assert client.run(chain(log), workflow_id="w") == 4
    done = restart(client.store, client.leases, "w", ["t2"])
    assert done.rerun == ("t2", "t3", "t4") and done.restart == 1
    assert client.get_status("w") is WorkflowStatus.RESUMABLE
    assert client.list_all(WorkflowStatus.RESUMABLE) == [("w", WorkflowStatus.RESUMABLE)]
    assert client.store.list_done("w") == {"t1"}
    assert client.resume("w") == 4
    assert counts(log) == {"t1": 1, "t2": 2, "t3": 2, "t4": 2}
    assert client.get_status("w") is WorkflowStatus.SUCCESSFUL
    # the attempts before the restart stay readable, under history/1/
    history = restart_history(client.store, "w")
    assert [h["restart"] for h in history] == [1]
    assert history[0]["from"] == ["t2"] and history[0]["status"] == "SUCCESSFUL"
    assert set(history[0]["tasks"]) == {"t2", "t3", "t4"}
    assert "checkpoint" in history[0]["tasks"]["t2"]
    # a second restart keeps the first one's history
    restart(client.store, client.leases, "w", ["t4"])
    assert client.resume("w") == 4
    assert counts(log) == {"t1": 1, "t2": 2, "t3": 2, "t4": 3}
    assert [h["restart"] for h in restart_history(client.store, "w")] == [1, 2]


def test_restart_of_a_fan_out_branch(client, tmp_path):
    log = str(tmp_path / "log")
    src = step.options(task_id="src").bind("src", 0, log)
    branches = [step.options(task_id=n).bind(n, src, log) for n in ("a", "b", "c")]
    assert client.run(join.options(task_id="join").bind(*branches, log=log), workflow_id="w") == 6
    done = restart(client.store, client.leases, "w", ["b"])
    assert set(done.rerun) == {"b", "join"}
    assert client.resume("w") == 6
    assert counts(log) == {"src": 1, "a": 1, "b": 2, "c": 1, "join": 2}


def test_restart_of_a_task_inside_a_continuation(client, tmp_path):
    log = str(tmp_path / "log")
    pre = step.options(task_id="pre").bind("pre", 0, log)
    mid = outer.options(task_id="outer").bind(pre, log)
    post = step.options(task_id="post").bind("post", mid, log)
    assert client.run(post, workflow_id="w") == 5
    done = restart(client.store, client.leases, "w", ["c2"])
    assert set(done.rerun) == {"c2", "c3", "post"}
    assert done.forwarded == ("outer",)  # its continuation is kept: its function is not rerun
    assert client.resume("w") == 5
    assert counts(log) == {"pre": 1, "outer": 1, "c1": 1, "c2": 2, "c3": 2, "post": 2}
    # restarting the continued task itself runs it again, and its continuation afresh
    done = restart(client.store, client.leases, "w", ["outer"])
    assert set(done.rerun) == {"outer", "c1", "c2", "c3", "post"}
    assert client.resume("w") == 5
    assert counts(log) == {"pre": 1, "outer": 2, "c1": 2, "c2": 3, "c3": 3, "post": 3}


def test_restart_of_a_successful_workflow_runs_the_changed_code(client, tmp_path):
    log, bump = str(tmp_path / "log"), tmp_path / "bump"
    bump.write_text("0")
    assert client.run(chain(log, str(bump)), workflow_id="w") == 4
    bump.write_text("10")  # "the fix": t2 now adds 10
    assert client.resume("w") == 4  # SUCCESSFUL: resume alone changes nothing
    restart(client.store, client.leases, "w", ["t2"])
    assert client.resume("w") == 14
    assert counts(log) == {"t1": 1, "t2": 2, "t3": 2, "t4": 2}


def test_restart_of_a_failed_workflow(client, tmp_path):
    log, fail = str(tmp_path / "log"), tmp_path / "fail"
    fail.write_text("")
    with pytest.raises(Exception):  # noqa: B017 - WorkflowExecutionError wraps RuntimeError
        client.run(chain(log, fail_file=str(fail)), workflow_id="w")
    assert client.get_status("w") is WorkflowStatus.FAILED
    restart(client.store, client.leases, "w", ["t2"])
    assert client.get_metadata("w")["error"] is None
    assert client.resume("w") == 4
    assert counts(log) == {"t1": 1, "t2": 2, "t3": 2, "t4": 1}
    history = restart_history(client.store, "w")[0]
    assert history["status"] == "FAILED" and "error" in history["tasks"]["t3"]


def test_restart_sets_aside_the_logs_of_the_tasks_it_runs_again(client, tmp_path):
    log, fail = str(tmp_path / "log"), tmp_path / "fail"
    fail.touch()
    a = noisy.options(task_id="a").bind("a", 0, log)
    b = noisy.options(task_id="b", max_retries=1, retry_exceptions=True)
    assert client.run(b.bind("b", a, log, str(fail)), workflow_id="w") == 2
    before = get_logs(client.store, "w")
    assert [(e.attempt, e.text) for e in before["b"]] == [(1, "b run 1\n"), (2, "b run 2\n")]
    restart(client.store, client.leases, "w", ["b"])
    assert get_logs(client.store, "w", "b") == {"b": []}  # set aside, not yet run again
    assert client.resume("w") == 2
    after = get_logs(client.store, "w")
    # only the new run's attempt: the old attempt 2 does not trail it, attempt 1 is the new one
    assert [(e.attempt, e.text) for e in after["b"]] == [(1, "b run 3\n")]
    assert [e.text for e in after["a"]] == ["a run 1\n"]  # a did not run again: kept
    old = get_logs(client.store, "w", restart=1)
    assert list(old) == ["b"]
    assert [(e.attempt, e.text) for e in old["b"]] == [(1, "b run 1\n"), (2, "b run 2\n")]
    history = restart_history(client.store, "w")[0]["tasks"]
    assert history["b"]["logs"] == [1, 2] and "logs" not in history.get("a", {})


def test_restart_rules_for_running_canceled_and_unknown(client, tmp_path):
    log, gate = str(tmp_path / "log"), tmp_path / "gate"
    with pytest.raises(WorkflowNotFoundError):
        restart(client.store, client.leases, "nope", ["t1"])
    assert client.run(chain(log), workflow_id="w") == 4
    with pytest.raises(WorkflowNotFoundError) as err:
        restart(client.store, client.leases, "w", ["t9"])
    assert err.value.task_id == "t9"
    # RUNNING: refused, nothing changed
    started = tmp_path / "started"
    future = client.run_async(
        wait_for.options(task_id="wait").bind(str(started), str(gate)), workflow_id="busy"
    )
    wait_until(started.exists)
    with pytest.raises(WorkflowStillActiveError):
        restart(client.store, client.leases, "busy", ["wait"])
    gate.write_text("")
    assert future.result(30) == 1
    # CANCELED: only explicitly; the cancel request is cleared so the resume runs
    restart(client.store, client.leases, "w", ["t4"])
    client.cancel("w")
    assert client.get_status("w") is WorkflowStatus.CANCELED
    with pytest.raises(WorkflowNotResumableError):
        restart(client.store, client.leases, "w", ["t3"])
    restart(client.store, client.leases, "w", ["t3"], allow_canceled=True)
    assert client.resume("w") == 4
    assert counts(log) == {"t1": 1, "t2": 1, "t3": 2, "t4": 2}


# Kill points, one per step of the protocol (module docstring of runtime/restart.py), with the
# status readers see right after the kill: the old one until the fenced status write (7).
RESTART_KILLS = [
    ({"op": "create", "key": "/lease"}, "SUCCESSFUL", False),  # 2
    ({"op": "put", "key": "/restart"}, "SUCCESSFUL", True),  # 5
    ({"op": "put", "key": "/history/", "nth": 2}, "SUCCESSFUL", True),  # 6
    ({"op": "put", "key": "index/dirty/"}, "SUCCESSFUL", True),  # 7, path C1
    ({"op": "swap", "key": "/run"}, "RESUMABLE", True),  # 7, path C2
    ({"op": "delete", "key": "/outputs/", "nth": 2}, "RESUMABLE", True),  # 8
    ({"op": "delete", "key": "/restart"}, "RESUMABLE", False),  # 9
]
# On S3 (a kill test there takes 1.5-3 s, several times file's) the default run kills at one
# step per kind of write -- create, put, swap, delete -- and at every step with DURABLEFLOW_SLOW=1.
RESTART_KILLS_ON_S3 = [RESTART_KILLS[i][0] for i in (0, 1, 4, 5)]


def only_some_steps_on_s3(storage_url: str, kill: dict[str, Any], kept: list[Any]) -> None:
    """Skip a kill at ``kill`` on S3 unless it is ``kept`` or DURABLEFLOW_SLOW is set."""
    if (
        storage_url.startswith("s3://")
        and kill not in kept
        and not os.environ.get("DURABLEFLOW_SLOW")
    ):
        pytest.skip(
            "on S3, one kill per kind of write by default; every step with (DURABLEFLOW_SLOW=1)"
        )


# On SQLite a Storage.batch() block is one transaction: a kill after a write inside a block
# reads as a kill before the block (step 5's plan; step 7's whole status change, path C2).
RESTART_KILLS_IN_A_BLOCK_ON_SQLITE = {
    ("put", "/restart"): ("SUCCESSFUL", False),
    ("swap", "/run"): ("SUCCESSFUL", True),
}


def killed_in_a_block(
    storage_url: str, kill: dict[str, Any], table: dict[tuple[str, str], Any], default: Any
) -> Any:
    """The state a kill leaves: ``default``, or ``table``'s when the kill is inside a SQLite
    transaction (the block's writes are lost with it, as if killed before the block)."""
    if storage_url.startswith("sqlite:"):
        return table.get((kill["op"], kill["key"]), default)
    return default


@pytest.mark.parametrize(("kill", "status", "planned"), RESTART_KILLS)
def test_killed_at_each_step_of_a_restart(storage_url, tmp_path, kill, status, planned):
    only_some_steps_on_s3(storage_url, kill, RESTART_KILLS_ON_S3)
    status, planned = killed_in_a_block(
        storage_url, kill, RESTART_KILLS_IN_A_BLOCK_ON_SQLITE, (status, planned)
    )
    log = run_killed(storage_url, tmp_path, "restart", kill)
    with Client(storage_url) as client:
        assert client.get_status("w") is WorkflowStatus(status)
        if status == "SUCCESSFUL":
            assert client.get_output("w") == 4  # the old workflow, whole
        assert client.list_all() == [("w", WorkflowStatus(status))]
        assert recover(client, "w") is planned
        if not planned and status == "SUCCESSFUL":  # killed before the plan: do it again
            restart(client.store, client.leases, "w", ["t2"])
        assert client.get_status("w") is WorkflowStatus.RESUMABLE
        assert client.store.list_done("w") == {"t1"}
        assert client.store.storage.get(layout.restart_key("w")) is None
        assert client.resume("w") == 4
        assert counts(log) == {"t1": 1, "t2": 2, "t3": 2, "t4": 2}
        assert [h["restart"] for h in restart_history(client.store, "w")] == [1]


def test_restart_with_a_signing_key_keeps_a_verifiable_history(storage_url, tmp_path):
    log = str(tmp_path / "log")
    with Client(storage_url, signing_key="k1") as client:
        assert client.run(chain(log), workflow_id="w") == 4
        restart(client.store, client.leases, "w", ["t3"])
        # the set-aside checkpoints are re-sealed for their history keys: they verify there
        history = restart_history(client.store, "w")[0]["tasks"]
        assert set(history) == {"t3", "t4"} and all("checkpoint" in t for t in history.values())
        assert client.resume("w") == 4
    assert counts(log) == {"t1": 1, "t2": 1, "t3": 2, "t4": 2}


def test_restart_and_fork_of_a_workflow_whose_runner_died(client, tmp_path):
    from durableflow.runtime.fork import fork
    from durableflow.storage.store import UNFENCED

    log = str(tmp_path / "log")
    assert client.run(chain(log), workflow_id="w") == 4
    record = client.store.read_run("w")
    crashed = record.replace(status=WorkflowStatus.RUNNING)  # a runner that died: no lease
    client.store.set_status(crashed, WorkflowStatus.SUCCESSFUL, expected=UNFENCED)
    assert client.get_status("w") is WorkflowStatus.RESUMABLE
    fork(client.store, client.leases, "w", "w2", from_task="t4")
    restart(client.store, client.leases, "w", ["t3"])
    assert client.resume("w") == 4 and client.resume("w2") == 4
    assert counts(log) == {"t1": 1, "t2": 1, "t3": 2, "t4": 3}
