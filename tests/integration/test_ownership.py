"""Ownership across processes: PID namespaces, paused owners (fencing), read-only storage.

The children are small programs given inline (``python -c``) with a JSON config.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from durableflow import Client, WorkflowStatus, WorkflowStillActiveError, workflow
from durableflow.runtime.lease import LeaseKeeper, is_alive
from durableflow.runtime.ownership import HOST, Identity, process_start_time
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage
from durableflow.testing import FaultyStorage
from helpers import wait_until

RUN_IN_NAMESPACE = """
import json, os, sys, time
from durableflow import Client, workflow
cfg = json.loads(sys.argv[1])

@workflow.task
def wait_gate(path):
    while not os.path.exists(path):
        time.sleep(0.01)
    return "done"

with Client(cfg["storage"], lease_ttl=cfg["ttl"]) as client:
    print(client.run(wait_gate.bind(cfg["gate"]), workflow_id="ns"), flush=True)
"""

HOLD_AND_PAUSE = """
import json, os, signal, sys, time
from durableflow import WorkflowStillActiveError
from durableflow.runtime.lease import LeaseKeeper
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage
cfg = json.loads(sys.argv[1])
keeper = LeaseKeeper(WorkflowStore(open_storage(cfg["storage"])), cfg["ttl"])
keeper.claim("w", lambda: print("on_lost", flush=True))
for n in range(100000):
    if n == cfg["stop_after"]:
        os.kill(os.getpid(), signal.SIGSTOP)  # paused right before its next check and write
    try:
        keeper.check("w")
    except WorkflowStillActiveError as err:
        print("lost:", err, flush=True)
        sys.exit(3)
    with open(cfg["log"], "a") as handle:
        handle.write(f"{n}\\n")
    time.sleep(0.005)
"""


@workflow.task
def wait_file(path: str) -> str:
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    return "done"


UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]


def _unshare_works() -> bool:
    try:
        done = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_a_runner_in_another_pid_namespace_with_the_same_host_name_is_not_seen_dead(tmp_path):
    if not _unshare_works():
        pytest.skip("unshare --pid --fork --mount-proc is not permitted here (needs root)")
    storage, gate = str(tmp_path / "store"), tmp_path / "gate"
    cfg = {"storage": storage, "ttl": 10.0, "gate": str(gate)}
    child = subprocess.Popen(
        [*UNSHARE, sys.executable, "-c", RUN_IN_NAMESPACE, json.dumps(cfg)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).parent),
    )
    try:
        with Client(storage) as client:
            wait_until(lambda: client.store.read_lease("ns")[0] is not None, timeout=60)
            lease, _ = client.store.read_lease("ns")
            assert lease.host == HOST and lease.pid_ns != Identity.local().pid_ns
            # The old rule (same host name, so look up /proc/<pid> here) would call it dead:
            started = process_start_time(lease.pid)
            assert started is None or started != lease.pid_start
            assert is_alive(lease)
            wait_until(lambda: client.store.read_run("ns") is not None, timeout=60)
            wait_until(lambda: client.get_status("ns") is WorkflowStatus.RUNNING, timeout=60)
            end = time.monotonic() + 1.0  # (the old rule: RESUMABLE at once)
            while time.monotonic() < end:
                assert client.get_status("ns") is WorkflowStatus.RUNNING
                time.sleep(0.05)
            with pytest.raises(WorkflowStillActiveError):
                client.resume("ns")
            gate.touch()
            out, _ = child.communicate(timeout=60)
            assert child.returncode == 0 and out.strip() == "done"
            assert client.get_status("ns") is WorkflowStatus.SUCCESSFUL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return handle.read().rpartition(b")")[2].split()[0] == b"T"


@pytest.mark.parametrize("claimer", ["same machine", "other machine"])
def test_a_paused_owner_taken_over_stops_when_it_wakes(tmp_path, claimer):
    storage, log = str(tmp_path / "store"), tmp_path / "log"
    cfg = {"storage": storage, "ttl": 0.5, "stop_after": 20, "log": str(log)}
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_PAUSE, json.dumps(cfg)], stdout=subprocess.PIPE, text=True
    )
    store = WorkflowStore(open_storage(storage))
    other = Identity("machine-b", "boot-b", 1) if claimer == "other machine" else None
    keeper = LeaseKeeper(store, 5.0, identity=other)
    try:
        wait_until(lambda: _stopped(child.pid), timeout=60)
        with pytest.raises(WorkflowStillActiveError):  # it holds the lease, not yet expired
            keeper.claim("w", lambda: None, wait=False)

        def took_over() -> bool:
            try:
                keeper.claim("w", lambda: None, wait=claimer == "other machine")
            except WorkflowStillActiveError:
                return False
            return True

        wait_until(took_over, timeout=60)
        assert store.read_lease("w")[0].owner == keeper.owner
        os.kill(child.pid, signal.SIGCONT)
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 3, out
        assert "lost ownership" in out
        # It wrote exactly the lines before its pause: nothing after waking up.
        assert log.read_text().split() == [str(n) for n in range(20)]
        assert store.read_lease("w")[0].owner == keeper.owner
        keeper.check("w")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        keeper.release("w")
        keeper.close()


def test_a_runner_that_cannot_release_on_read_only_storage_reads_resumable_at_once(
    storage_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("DURABLEFLOW_RUNTIME_DIR", str(tmp_path / "run"))
    gate = tmp_path / "gate"
    storage = FaultyStorage(open_storage(storage_url))
    with Client(storage, cancel_poll=0.05) as client:  # TTL 30 s
        future = client.run_async(wait_file.bind(str(gate)), workflow_id="ro")
        wait_until(lambda: client.get_status("ro") is WorkflowStatus.RUNNING)
        for op in ("put", "create", "swap", "delete"):
            storage.inject(op, times=None, error=True)  # the storage turns read-only
        gate.touch()
        with pytest.raises(Exception):  # noqa: B017 - the run gives up (a storage error)
            future.result(timeout=60)
        lease, _ = client.store.read_lease("ro")
        assert lease is not None and lease.expires_at > time.time() + 10  # not deleted
        assert client.get_status("ro") is WorkflowStatus.RESUMABLE
        reader = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from durableflow import Client; "
                "print(Client(sys.argv[1]).get_status('ro').value)",
                storage_url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert reader.stdout.strip() == "RESUMABLE", reader.stderr
        storage.heal()
        assert client.resume("ro") == "done"  # at once: no WorkflowStillActiveError
        assert client.store.read_lease("ro") == (None, None)


def test_a_claimer_whose_clock_runs_35_s_ahead_cannot_take_over_a_live_remote_owner(storage_url):
    store = WorkflowStore(open_storage(storage_url))
    holder = LeaseKeeper(store, 2.0, identity=Identity("machine-b", "boot-b", 1))
    lost: list[str] = []
    holder.claim("w", lambda: lost.append("w"))
    ahead = LeaseKeeper(
        store, 2.0, identity=Identity("machine-c", "boot-c", 2), clock=lambda: time.time() + 35
    )
    try:
        # By its clock the lease expired 35 s ago: it watches the lease for a TTL, sees it
        # renewed, and refuses (before: it took over at once and both ran the workflow).
        with pytest.raises(WorkflowStillActiveError, match="renewed"):
            ahead.claim("w", lambda: None)
        end = time.monotonic() + 2.5  # non-blocking claims over more than a TTL
        while time.monotonic() < end:
            with pytest.raises(WorkflowStillActiveError):
                ahead.claim("w", lambda: None, wait=False)
            time.sleep(0.05)
        holder.check("w")
        assert store.read_lease("w")[0].owner == holder.owner and lost == []
    finally:
        holder.release("w")
        holder.close()
        ahead.close()
    assert store.read_lease("w") == (None, None)
