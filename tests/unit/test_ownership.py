"""The ownership primitive in one process: identity, liveness, observation, fencing, release."""

from __future__ import annotations

import json
import threading
import time

import pytest

from durableflow import WorkflowStillActiveError
from durableflow.model.ownership import LeaseRecord, SlotRecord
from durableflow.runtime.lease import LeaseKeeper, is_alive
from durableflow.runtime.ownership import (
    HOST,
    Identity,
    boottime,
    is_abandoned,
    process_start_time,
)
from durableflow.storage.memory import MemoryStorage
from durableflow.storage.store import WorkflowStore
from durableflow.testing import FaultyStorage

OTHER = Identity("machine-b", "boot-b", 4026531999)
THIRD = Identity("machine-c", "boot-c", 4026531998)
DEAD_PID = 2**22 + 4321


@pytest.fixture
def store() -> WorkflowStore:
    return WorkflowStore(MemoryStorage())


def record(identity: Identity, pid: int, expires_in: float, ttl: float = 1.0) -> LeaseRecord:
    return LeaseRecord(
        f"{HOST}:{pid}:x",
        HOST,
        pid,
        "",
        time.time() + expires_in,
        machine_id=identity.machine_id,
        boot_id=identity.boot_id,
        pid_ns=identity.pid_ns,
        ttl=ttl,
        boot_expires=boottime() + expires_in,
    )


def test_records_of_older_versions_read_as_another_machine():
    old = {"owner": "h:1", "host": HOST, "pid": DEAD_PID, "pid_start": "", "expires_at": 1e12}
    lease = LeaseRecord.from_bytes(json.dumps(old).encode())
    assert (lease.machine_id, lease.boot_id, lease.pid_ns, lease.ttl, lease.seq) == (
        "",
        "",
        0,
        0,
        0,
    )
    assert not Identity.local().matches(lease)
    assert is_alive(lease)  # same host name, dead pid: no longer "dead at once"
    slot = SlotRecord.from_bytes(json.dumps({**old, "workflow_id": "w"}).encode())
    assert slot.workflow_id == "w" and not Identity.local().matches(slot)
    new = record(Identity.local(), DEAD_PID, 30)
    assert LeaseRecord.from_bytes(new.to_bytes()) == new


def test_local_identity_comes_from_the_kernel():
    ident = Identity.local()
    with open("/proc/sys/kernel/random/boot_id") as handle:
        assert ident.boot_id == handle.read().strip()
    import os

    assert ident.pid_ns == os.stat("/proc/self/ns/pid").st_ino
    assert ident.matches(record(ident, 1, 30))
    assert not ident.matches(record(OTHER, 1, 30))
    # Equal host names, another PID namespace (a container with --network host): not local.
    assert not ident.matches(record(Identity(ident.machine_id, ident.boot_id, 1), 1, 30))


def test_liveness_by_identity():
    me = Identity.local()
    assert not is_alive(record(me, DEAD_PID, 30))  # same machine, process gone: at once
    mine = record(me, __import__("os").getpid(), 30)
    assert process_start_time(mine.pid) is not None and is_alive(mine)
    assert not is_alive(record(me, mine.pid, -0.001))  # same machine: one clock, no margin
    assert is_alive(record(OTHER, DEAD_PID, 30))  # another machine: only its expiry tells
    assert is_alive(record(OTHER, DEAD_PID, -0.05))  # ... with a margin (ttl / 10)
    assert not is_alive(record(OTHER, DEAD_PID, -0.2))


def test_a_claimer_with_a_skewed_clock_cannot_take_over_a_live_remote_lease(store):
    holder = LeaseKeeper(store, 1.0, identity=OTHER)
    lost: list[str] = []
    holder.claim("w", lambda: lost.append("w"))
    skewed = LeaseKeeper(store, 1.0, identity=THIRD, clock=lambda: time.time() + 35)
    try:
        # Its clock says the lease expired 35 s ago; it waits, sees renewals, and refuses.
        with pytest.raises(WorkflowStillActiveError, match="renewed"):
            skewed.claim("w", lambda: None)
        deadline = time.monotonic() + 1.5  # more than a TTL of polling without waiting
        while time.monotonic() < deadline:
            with pytest.raises(WorkflowStillActiveError):
                skewed.claim("w", lambda: None, wait=False)
            time.sleep(0.02)
        holder.check("w")
        assert store.read_lease("w")[0].owner == holder.owner
        assert lost == []
    finally:
        holder.close()
        skewed.close()


def test_a_dead_remote_lease_is_taken_over_after_a_ttl_observed_here(store):
    assert store.create_lease("w", record(OTHER, DEAD_PID, 3600, ttl=0.3))  # expiry far ahead
    claimer = LeaseKeeper(store, 5.0, identity=THIRD)
    try:
        with pytest.raises(WorkflowStillActiveError):  # not observed yet
            claimer.claim("w", lambda: None, wait=False)
        with pytest.raises(WorkflowStillActiveError):  # wall clock says alive: no waiting
            claimer.claim("w", lambda: None)
        time.sleep(0.3)
        claimer.claim("w", lambda: None, wait=False)  # a slow wall clock does not matter
        assert store.read_lease("w")[0].owner == claimer.owner
    finally:
        claimer.close()


def test_claim_waits_for_the_observation_when_the_remote_lease_looks_expired(store):
    assert store.create_lease("w", record(OTHER, DEAD_PID, -60, ttl=0.3))
    claimer = LeaseKeeper(store, 5.0, identity=THIRD)
    started = time.monotonic()
    try:
        claimer.claim("w", lambda: None)
        assert time.monotonic() - started >= 0.3
        assert store.read_lease("w")[0].owner == claimer.owner
    finally:
        claimer.close()


def test_a_dead_local_lease_is_taken_over_at_once(store):
    assert store.create_lease("w", record(Identity.local(), DEAD_PID, 3600, ttl=3600))
    claimer = LeaseKeeper(store, 5.0)
    try:
        claimer.claim("w", lambda: None, wait=False)
        assert store.read_lease("w")[0].owner == claimer.owner
    finally:
        claimer.close()


def test_check_does_no_io_before_the_deadline_and_renews_once_after():
    storage = FaultyStorage(MemoryStorage())
    keeper = LeaseKeeper(WorkflowStore(storage), 30.0)
    keeper.claim("w", lambda: None)
    before = storage.calls()
    for _ in range(1000):
        keeper.check("w")
    assert storage.calls() == before
    keeper.close()
    short = LeaseKeeper(WorkflowStore(storage), 0.3)
    short.claim("v", lambda: None)
    short.close()  # no heartbeat: only check() renews
    time.sleep(0.3)
    before = storage.calls()
    short.check("v")  # past the deadline: one swap, nobody took over: ownership restored
    short.check("v")
    assert storage.calls()["swap"] == before["swap"] + 1


def test_check_after_a_takeover_raises_and_calls_on_lost_once(store):
    keeper = LeaseKeeper(store, 0.3)
    lost: list[int] = []
    keeper.claim("w", lambda: lost.append(1))
    keeper.close()
    time.sleep(0.3)
    _, raw = store.read_lease("w")
    assert store.swap_lease("w", raw, record(OTHER, 1, 60))
    with pytest.raises(WorkflowStillActiveError, match="lost ownership"):
        keeper.check("w")
    with pytest.raises(WorkflowStillActiveError, match="lost ownership"):
        keeper.check("w")
    assert lost == [1]
    keeper.release("w")  # not ours: the new owner's lease stays
    assert store.read_lease("w")[0].owner == f"{HOST}:1:x"


def test_check_when_the_storage_refuses_stops_and_abandons(tmp_path, monkeypatch):
    monkeypatch.setenv("DURABLEFLOW_RUNTIME_DIR", str(tmp_path / "run"))
    storage = FaultyStorage(MemoryStorage())
    store = WorkflowStore(storage)
    keeper = LeaseKeeper(store, 0.3)
    keeper.claim("w", lambda: None)
    keeper.close()
    time.sleep(0.3)
    storage.inject("swap", error=True)
    with pytest.raises(WorkflowStillActiveError, match="lost ownership"):
        keeper.check("w")
    lease, _ = store.read_lease("w")
    assert lease is not None and is_abandoned(lease)  # this machine reads it dead at once


class LateSwap(FaultyStorage):
    """A swap that compares, then waits for ``go`` before it writes (the FileStorage race)."""

    def __init__(self) -> None:
        super().__init__(MemoryStorage())
        self.comparing = threading.Event()
        self.go = threading.Event()

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        if self.inner.get(key) != expected:
            return False
        self.comparing.set()
        self.go.wait(10)
        self.inner.put(key, data)
        return True


def test_release_is_serialised_with_a_renewal_in_flight():
    storage = LateSwap()
    store = WorkflowStore(storage)
    keeper = LeaseKeeper(store, 30.0)
    keeper.claim("w", lambda: None)
    renewal = threading.Thread(target=keeper.renew_all)
    renewal.start()
    assert storage.comparing.wait(10)
    releasing = threading.Thread(target=keeper.release, args=("w",))
    releasing.start()
    releasing.join(0.2)
    assert releasing.is_alive()  # waits for the renewal's swap to finish
    storage.go.set()
    renewal.join(10)
    releasing.join(10)
    assert store.read_lease("w") == (None, None)  # not re-created by the late swap
    keeper.close()


def test_a_renewal_whose_reply_was_lost_does_not_lose_the_lease():
    storage = FaultyStorage(MemoryStorage())
    store = WorkflowStore(storage)
    keeper = LeaseKeeper(store, 30.0)
    lost: list[int] = []
    keeper.claim("w", lambda: lost.append(1))
    storage.inject("swap", error_after=True)  # the swap lands, its reply is lost
    keeper.renew_all()
    keeper.renew_all()  # compares with the bytes that landed: still ours
    assert lost == []
    keeper.check("w")
    storage.inject("swap", error_after=True)
    keeper.renew_all()
    keeper.release("w")  # deletes the bytes that landed
    assert store.read_lease("w") == (None, None)
    keeper.close()


def test_an_on_lost_that_raises_does_not_stop_the_heartbeat(store):
    keeper = LeaseKeeper(store, 30.0)

    def boom() -> None:
        raise RuntimeError("boom")

    keeper.claim("a", boom)
    keeper.claim("b", lambda: None)
    _, raw = store.read_lease("a")
    assert store.swap_lease("a", raw, record(OTHER, 1, 60))
    keeper.renew_all()  # loses "a" (its callback raises), renews "b"
    _, before = store.read_lease("b")
    keeper.renew_all()
    assert store.read_lease("b")[1] != before
    keeper.release("b")
    keeper.close()
