"""Worker slots on the ownership primitive: a SIGKILL at each step, takeovers, release races.

Each kill test runs a child worker (``max_running_workflows=1``) killed at one storage
operation of the slot protocol, then checks that the slot does not stay blocked: on the same
machine a dead worker's slot is taken over at once, and the workflow is finished exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import wtasks
from wtools import subprocess_env

from durableflow import Client, WorkflowStatus, WorkflowStillActiveError
from durableflow.model.ownership import SlotRecord
from durableflow.runtime.ownership import HOST, Identity, boottime
from durableflow.runtime.slots import SlotKeeper
from durableflow.storage.memory import MemoryStorage
from durableflow.storage.slots import SlotStore
from durableflow.testing import FaultyStorage
from durableflow.worker import Worker
from helpers import wait_until

OTHER = Identity("machine-b", "boot-b", 4026531999)
DEAD_PID = 2**22 + 4321

# One worker scan with max_running_workflows=1, killed at a storage operation. For the renewal
# step the kill point is the heartbeat's swap of the slot; the task waits for a file meanwhile.
CHILD = """
import json, sys
from durableflow import Client
from durableflow.storage.urls import open_storage
from durableflow.testing import FaultyStorage, kill_this_process
from durableflow.worker import Worker
cfg = json.loads(sys.argv[1])
kill = cfg["kill"]
hook = {kill["when"]: kill_this_process}
storage = FaultyStorage(open_storage(cfg["storage"]), kill["op"], key=kill["key"], **hook)
client = Client(storage, lease_ttl=cfg["ttl"])
worker = Worker(client, max_running_workflows=1, schedules=False)
worker.run_once()
worker.wait_idle(60)
worker.shutdown(1.0)
print("the kill point was never reached", flush=True)
"""

STEPS = {
    # step 1, acquire: the slot's create-only write, before and after it lands
    "acquire, before": {"op": "create", "key": "slots/0", "when": "before"},
    "acquire, after": {"op": "create", "key": "slots/0", "when": "after"},
    # step 2, claim the workflow: its lease, slot held
    "claim workflow": {"op": "create", "key": "/lease", "when": "after"},
    # step 3, renew: the heartbeat's swap of the slot, before and after it lands
    "renew, before": {"op": "swap", "key": "slots/0", "when": "before"},
    "renew, after": {"op": "swap", "key": "slots/0", "when": "after"},
    # step 4, release: the slot's delete, before and after it lands
    "release, before": {"op": "delete", "key": "slots/0", "when": "before"},
    "release, after": {"op": "delete", "key": "slots/0", "when": "after"},
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_worker_killed_at_each_step_of_the_slot_protocol(tmp_path: Path, step: str):
    storage, log = str(tmp_path / "store"), tmp_path / "log"
    go = tmp_path / "go"
    if not step.startswith("renew"):
        go.touch()  # the renewal test holds the task until the heartbeat has run
    with Client(storage) as client:
        client.submit(
            wtasks.wait_for.bind(str(go), str(tmp_path / "started"), str(log), "w", 1),
            workflow_id="w",
        )
    cfg = {"storage": storage, "kill": STEPS[step], "ttl": 0.6}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
    )
    assert done.returncode == -9, (done.stdout, done.stderr)
    go.touch()
    with Client(storage) as client:
        keeper = SlotKeeper(client.storage, 1)  # TTL 30 s: nothing here waits for an expiry
        try:
            assert keeper.maybe_free()
            assert keeper.acquire("probe", lambda: None) == 0  # free, or taken over at once
            keeper.release(0)
            assert SlotStore(client.storage).read(0) == (None, None)
        finally:
            keeper.close()
        runner = Worker(client, max_running_workflows=1, schedules=False)
        wait_until(lambda: client.get_status("w") is not WorkflowStatus.RUNNING, timeout=30)
        if client.get_status("w") is not WorkflowStatus.SUCCESSFUL:
            assert runner.run_once() == ["w"]
            assert runner.wait_idle(60)
        runner.shutdown(1.0)
        assert client.get_status("w") is WorkflowStatus.SUCCESSFUL
        assert client.get_output("w") == 2
        assert SlotStore(client.storage).taken() == []
    ran = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert ran == {"w": 1}


def slot(identity: Identity, pid: int, ttl: float, expires_in: float = 3600) -> SlotRecord:
    return SlotRecord(
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
        workflow_id="old",
    )


def test_a_dead_workers_slot_on_this_machine_is_taken_over_at_once():
    storage = MemoryStorage()
    assert SlotStore(storage).create(0, slot(Identity.local(), DEAD_PID, 3600))
    keeper = SlotKeeper(storage, 1)
    try:
        assert keeper.maybe_free()
        assert keeper.acquire("new", lambda: None) == 0
        assert SlotStore(storage).read(0)[0].workflow_id == "new"
    finally:
        keeper.close()


def test_a_dead_workers_slot_on_another_machine_is_taken_over_after_an_observed_ttl():
    storage = MemoryStorage()
    assert SlotStore(storage).create(0, slot(OTHER, DEAD_PID, 0.3))  # wall expiry far ahead
    keeper = SlotKeeper(storage, 1)
    try:
        assert not keeper.maybe_free()  # first sight starts the observation
        assert keeper.acquire("new", lambda: None) is None
        time.sleep(0.3)
        assert keeper.maybe_free()
        assert keeper.acquire("new", lambda: None) == 0
        assert SlotStore(storage).read(0)[0].owner == keeper.owner
    finally:
        keeper.close()


def test_a_live_workers_slot_on_another_machine_is_never_taken_over():
    storage = MemoryStorage()
    holder = SlotKeeper(storage, 1, 1.0, identity=OTHER)
    lost: list[str] = []
    assert holder.acquire("busy", lambda: lost.append("busy")) == 0
    keeper = SlotKeeper(storage, 1, 1.0)
    try:
        end = time.monotonic() + 1.5  # more than a TTL of polling
        while time.monotonic() < end:
            assert keeper.acquire("new", lambda: None) is None
            time.sleep(0.02)
        assert holder.held() == {0: "busy"} and lost == []
        holder.check(0)
    finally:
        keeper.close()
        holder.close()
    assert SlotStore(storage).taken() == []


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


def test_a_slot_released_during_a_renewal_is_not_recreated():
    storage = LateSwap()
    keeper = SlotKeeper(storage, 1)
    assert keeper.acquire("w", lambda: None) == 0
    renewal = threading.Thread(target=keeper.renew_all)
    renewal.start()
    assert storage.comparing.wait(10)
    releasing = threading.Thread(target=keeper.release, args=(0,))
    releasing.start()
    releasing.join(0.2)
    assert releasing.is_alive()  # waits for the renewal's swap
    storage.go.set()
    renewal.join(10)
    releasing.join(10)
    assert SlotStore(storage).read(0) == (None, None)  # before: re-created, held by us
    other = SlotKeeper(storage, 1)
    try:
        assert other.acquire("x", lambda: None) == 0
    finally:
        other.close()
        keeper.close()


def test_a_worker_whose_slot_was_taken_over_stops_at_its_check():
    inner = MemoryStorage()
    storage = FaultyStorage(inner)
    keeper = SlotKeeper(storage, 1, 0.3)
    lost: list[str] = []
    assert keeper.acquire("w", lambda: lost.append("w")) == 0
    storage.inject("swap", times=None, error=True)  # its renewals fail: as if paused
    thief = SlotKeeper(inner, 1, 0.3)
    try:
        wait_until(lambda: thief.acquire("x", lambda: None) == 0)  # expired on this machine
        storage.heal()
        with pytest.raises(WorkflowStillActiveError, match="lost ownership"):
            keeper.check(0)
        assert lost == ["w"]
        assert SlotStore(inner).read(0)[0].owner == thief.owner
    finally:
        keeper.close()
        thief.close()
