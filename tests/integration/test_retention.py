"""Retention (runtime/retention.py): a stored policy, prune with an injected clock, kills."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from durableflow import Client, WorkflowStatus, workflow
from durableflow.errors import WorkflowExecutionError, WorkflowNotFoundError
from durableflow.model.filters import WorkflowFilter
from durableflow.runtime.restart import restart
from durableflow.runtime.retention import (
    RetentionPolicy,
    get_retention,
    prune,
    set_retention,
)
from durableflow.storage import layout

DAY = 86400.0


def _load_restart_module():  # type: ignore[no-untyped-def]
    """The kill program of test_restart.py (one program for every kill suite of issue 14)."""
    name = "durableflow_test_restart_tasks"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("test_restart.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


tr = _load_restart_module()


@workflow.task
def job(i: int, fail: bool) -> int:
    if fail:
        raise RuntimeError(f"job {i} fails")
    return i


def test_policy_is_stored_for_every_process(storage_url):
    with Client(storage_url) as client:
        assert get_retention(client.store).is_empty
        policy = set_retention(
            client.store, {"SUCCESSFUL": "30d", "failed": "90d", "CANCELED": "7d"}, keep_last=3
        )
        assert policy.ages[WorkflowStatus.FAILED] == 90 * DAY
        for bad in ({"RESUMABLE": "1d"}, {"RUNNING": "1d"}, {"SUCCESSFUL": "soon"}):
            with pytest.raises(ValueError):
                set_retention(client.store, bad)
    with Client(storage_url) as other:  # another process sees the same policy
        stored = get_retention(other.store)
        assert stored == policy
        assert stored.to_json()["ages_text"] == {
            "CANCELED": "7d",
            "FAILED": "90d",
            "SUCCESSFUL": "30d",
        }
        set_retention(other.store, {"SUCCESSFUL": "1d"}, keep_last={"nightly": 2})
        assert get_retention(other.store) == RetentionPolicy(
            {WorkflowStatus.SUCCESSFUL: DAY}, None, {"nightly": 2}
        )


def test_prune_applies_the_policy_with_an_injected_clock(client):
    store = client.store
    for i in range(3):
        client.run(job.bind(i, False), workflow_id=f"ok-{i}")
    for i in range(2):
        with pytest.raises(WorkflowExecutionError):
            client.run(job.bind(i, True), workflow_id=f"bad-{i}")
    for i in range(2):
        with pytest.raises(WorkflowExecutionError):
            client.run(job.bind(i, True), workflow_id=f"stop-{i}")
        client.cancel(f"stop-{i}")
    client.run(job.options(task_id="j").bind(9, False), workflow_id="again")
    restart(store, client.leases, "again", ["j"])  # RESUMABLE: never pruned by age
    for day in range(1, 6):
        client.run(job.bind(day, False), workflow_id=f"nightly@2026-01-0{day}T00:00:00Z")
    set_retention(store, {"SUCCESSFUL": "30d", "FAILED": "90d", "CANCELED": "7d"}, keep_last=2)

    def ids() -> list[str]:
        return [w for w, _ in client.list_all()]

    now = time.time()
    dry = prune(store, client.leases, now, dry_run=True)
    assert dry.selected == [f"nightly@2026-01-0{d}T00:00:00Z" for d in (1, 2, 3)]
    assert len(ids()) == 13
    sleeps: list[float] = []
    result = prune(store, client.leases, now, rate=1000, sleep=sleeps.append)
    assert result.deleted == dry.selected and result.skipped == {}
    assert len(ids()) == 10 and len(sleeps) <= 3
    assert prune(store, client.leases, now + 6 * DAY).deleted == []
    assert prune(store, client.leases, now + 8 * DAY).deleted == ["stop-0", "stop-1"]
    assert prune(store, client.leases, now + 31 * DAY).deleted == [
        "nightly@2026-01-04T00:00:00Z",
        "nightly@2026-01-05T00:00:00Z",
        "ok-0",
        "ok-1",
        "ok-2",
    ]
    assert ids() == ["again", "bad-0", "bad-1"]
    assert prune(store, client.leases, now + 91 * DAY).deleted == ["bad-0", "bad-1"]
    assert prune(store, client.leases, now + 10_000 * DAY).deleted == []
    assert ids() == ["again"] and client.get_status("again") is WorkflowStatus.RESUMABLE
    # a pruned id is free again
    assert client.run(job.bind(5, False), workflow_id="ok-0") == 5


def test_prune_by_filter_never_touches_active_or_resumable(client):
    for i in range(4):
        client.run(job.options(task_id="j").bind(i, False), workflow_id=f"x-{i}")
    restart(client.store, client.leases, "x-3", ["j"])
    flt = WorkflowFilter.of(prefix="x-", older_than="0s", status={"SUCCESSFUL", "RESUMABLE"})
    result = prune(client.store, client.leases, filter=flt)
    assert result.deleted == ["x-0", "x-1", "x-2"]
    assert client.list_all() == [("x-3", WorkflowStatus.RESUMABLE)]


# One kill per step of the delete protocol (StatusIndex.delete_workflow), run by a prune; the
# status readers see after it: the old one until the run record is deleted, then none.
DELETE_KILLS = [
    ({"op": "put", "key": "index/dirty/w"}, "SUCCESSFUL"),  # 1 tombstone
    ({"op": "delete", "key": "index/SUCCESSFUL/w"}, "SUCCESSFUL"),  # 2
    ({"op": "delete", "key": "workflows/w/run"}, None),  # 3
    ({"op": "delete", "key": "workflows/w/outputs/", "nth": 2}, None),  # 4
    ({"op": "delete", "key": "index/dirty/w"}, None),  # 5
]


@pytest.mark.parametrize(("kill", "status"), DELETE_KILLS)
def test_killed_at_each_step_of_a_prune_is_finished_by_the_next(
    storage_url, tmp_path, kill, status
):
    log = tr.run_killed(storage_url, tmp_path, "prune", kill)
    with Client(storage_url) as client:
        if status is None:
            assert client.list_all() == []
            with pytest.raises(WorkflowNotFoundError):
                client.get_status("w")
        else:
            assert client.list_all() == [("w", WorkflowStatus(status))]
            assert client.get_status("w") is WorkflowStatus(status)
        result = prune(client.store, client.leases)
        finished = kill["key"] != "index/dirty/w" or kill["op"] == "put"
        assert (result.finished == ["w"] or result.deleted == ["w"]) is finished
        assert client.store.list_deleting() == []
        assert client.list_all() == []
        left = client.store.storage.list(layout.workflow_prefix("w"))
        assert left in ([], [layout.lease_key("w")])  # a killed holder's lease: harmless
        assert client.run(tr.chain(log), workflow_id="w") == 4  # the id is free again
        assert tr.counts(log) == {"t1": 2, "t2": 2, "t3": 2, "t4": 2}


def test_a_workflow_changed_after_its_selection_is_not_deleted(client):
    for i in range(3):
        client.run(job.options(task_id="j").bind(i, False), workflow_id=f"y-{i}")
    sleeps: list[float] = []

    def sleep(delay: float) -> None:  # between the selection and the delete of y-1
        if not sleeps:
            restart(client.store, client.leases, "y-1", ["j"])
        sleeps.append(delay)

    flt = WorkflowFilter.of(prefix="y-", status={"SUCCESSFUL"})
    result = prune(client.store, client.leases, filter=flt, rate=1, sleep=sleep)
    assert result.selected == ["y-0", "y-1", "y-2"]
    assert result.deleted == ["y-0", "y-2"]
    assert result.skipped == {"y-1": "changed since it was selected"}
    assert len(sleeps) == 2 and 0 < sleeps[0] <= 1  # paced at 1 per second (sleep is fake)
    assert client.list_all() == [("y-1", WorkflowStatus.RESUMABLE)]
