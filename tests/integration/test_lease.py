"""Ownership: leases in storage, their expiry, heartbeat and takeover."""

from __future__ import annotations

import os
import time

import pytest

from durableflow import (
    Client,
    WorkflowExecutionError,
    WorkflowStatus,
    WorkflowStillActiveError,
    workflow,
)
from durableflow.model.records import LeaseRecord
from durableflow.runtime.lease import is_alive, process_start_time
from durableflow.runtime.ownership import Identity
from helpers import wait_until


@workflow.task
def wait_file(path: str) -> str:
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    return "done"


@workflow.task
def fail_without(path: str) -> str:
    if not os.path.exists(path):
        raise RuntimeError("missing")
    return "ok"


def lease(
    host: str,
    pid: int,
    expires_in: float,
    pid_start: str = "",
    *,
    here: bool = False,
    ttl: float = 0.0,
) -> LeaseRecord:
    """A lease record; ``here``: with this machine's identity (else another or unknown one)."""
    ident = Identity.local() if here else Identity("other-machine", "other-boot", 1)
    return LeaseRecord(
        f"{host}:{pid}",
        host,
        pid,
        pid_start,
        time.time() + expires_in,
        machine_id=ident.machine_id,
        boot_id=ident.boot_id,
        pid_ns=ident.pid_ns,
        ttl=ttl,
    )


def test_liveness_rules():
    me = os.getpid()
    from durableflow.runtime.lease import HOST

    assert is_alive(lease(HOST, me, 30, process_start_time(me) or "", here=True))
    assert not is_alive(lease(HOST, me, -1, here=True))  # expired even though the pid lives
    # Same pid, another process start: a reused pid.
    assert not is_alive(lease(HOST, me, 30, "12345", here=True))
    dead = 2**22 + 12345
    assert not is_alive(lease(HOST, dead, 30, here=True))  # dead pid on this machine: at once
    assert is_alive(lease("another-host", dead, 30))  # elsewhere only expiry tells
    assert not is_alive(lease("another-host", dead, -60))
    # Updated (issue 9 item 4a): the host name alone no longer makes a lease "local", neither
    # for a record of another machine nor for one written before the identity fields existed.
    assert is_alive(lease(HOST, dead, 30))
    old = LeaseRecord(f"{HOST}:{dead}", HOST, dead, "", time.time() + 30)
    assert is_alive(old)


def forge_running(
    client: Client, workflow_id: str, host: str, expires_in: float, gate: str, ttl: float = 0.0
) -> None:
    """Make a FAILED workflow look RUNNING under a runner on another host."""
    with pytest.raises(WorkflowExecutionError):
        client.run(fail_without.bind(gate), workflow_id=workflow_id)
    record = client.store.read_run(workflow_id)
    assert record is not None
    client.store.set_status(record.replace(status=WorkflowStatus.RUNNING), record.status)
    assert client.store.create_lease(workflow_id, lease(host, 4242, expires_in, ttl=ttl))


def test_a_live_remote_runner_blocks_resume_and_delete(storage_url, tmp_path):
    with Client(storage_url) as client:
        forge_running(client, "remote", "another-host", 60, str(tmp_path / "gate"))
        assert client.get_status("remote") is WorkflowStatus.RUNNING
        with pytest.raises(WorkflowStillActiveError):
            client.resume("remote")
        with pytest.raises(WorkflowStillActiveError):
            client.delete("remote")


def test_an_expired_remote_lease_reads_resumable_and_is_taken_over(storage_url, tmp_path):
    # Updated (issue 9 item 4b): the takeover is no longer immediate on the wall clock; the
    # claimer first sees the remote lease unchanged for the holder's TTL (0.5 s here).
    gate = tmp_path / "gate"
    with Client(storage_url) as client:
        forge_running(client, "expired", "another-host", -60, str(gate), ttl=0.5)
        assert client.get_status("expired") is WorkflowStatus.RESUMABLE
        assert client.list_all(WorkflowStatus.RESUMABLE) == [("expired", WorkflowStatus.RESUMABLE)]
        gate.touch()
        started = time.monotonic()
        assert client.resume("expired") == "ok"
        assert time.monotonic() - started >= 0.5
        assert client.store.read_lease("expired") == (None, None)


def test_heartbeat_keeps_a_short_lease_alive_while_the_workflow_runs(storage_url, tmp_path):
    gate = tmp_path / "gate"
    with Client(storage_url, lease_ttl=0.6) as client:
        future = client.run_async(wait_file.bind(str(gate)), workflow_id="hb")
        wait_until(lambda: client.get_status("hb") is WorkflowStatus.RUNNING)
        first, _ = client.store.read_lease("hb")
        assert first is not None
        # Several ttl periods later the lease has been renewed and still reads RUNNING.
        wait_until(lambda: client.store.read_lease("hb")[0].expires_at > first.expires_at + 0.5)
        assert client.get_status("hb") is WorkflowStatus.RUNNING
        gate.touch()
        assert future.result(timeout=30) == "done"
        assert client.store.read_lease("hb") == (None, None)


def test_losing_the_lease_stops_the_runner_without_writing(storage_url, tmp_path):
    gate = tmp_path / "gate"
    with Client(storage_url, lease_ttl=0.6) as client:
        future = client.run_async(wait_file.bind(str(gate)), workflow_id="stolen")
        wait_until(lambda: client.get_status("stolen") is WorkflowStatus.RUNNING)
        _, raw = client.store.read_lease("stolen")
        thief = lease("another-host", 1, 60)
        assert client.store.swap_lease("stolen", raw, thief)
        with pytest.raises(WorkflowStillActiveError, match="taken over"):
            future.result(timeout=30)
        assert client.store.read_lease("stolen")[0] == thief
        gate.touch()
