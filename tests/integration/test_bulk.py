"""Filters (model/filters.py) and bulk actions by filter (runtime/bulk.py) on 50 workflows."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from durableflow import WorkflowStatus, workflow
from durableflow.errors import WorkflowExecutionError
from durableflow.model.filters import WorkflowFilter, age_reference, matches, parse_age
from durableflow.model.info import WorkflowInfo
from durableflow.runtime.bulk import cancel_all, delete_all, resume_all, select, select_statuses
from durableflow.runtime.restart import restart
from helpers import wait_until


@workflow.task
def flaky(i: int, fail_file: str) -> int:
    if os.path.exists(fail_file):
        raise RuntimeError(f"job {i} fails")
    return i


@workflow.task
def other(i: int) -> int:
    return -i


@workflow.task
def hold(started: str, gate: str) -> int:
    Path(started).touch()
    while not os.path.exists(gate):
        time.sleep(0.01)
    return 0


def info(wid: str, status: str, **times: float) -> WorkflowInfo:
    base = {"created_at": 100.0, "start_time": None, "end_time": None, "updated_at": 100.0}
    base.update(times)
    return WorkflowInfo(
        workflow_id=wid,
        status=WorkflowStatus(status),
        name="jobs.etl",
        root_task_id="r",
        user_metadata={},
        error=None,
        epoch=1,
        **base,  # type: ignore[arg-type]
    )


def test_filter_is_pure_and_measures_age_from_the_end_or_the_start():
    flt = WorkflowFilter.of(status={"failed", WorkflowStatus.CANCELED}, prefix="j", older_than="1h")
    assert flt.status == {WorkflowStatus.FAILED, WorkflowStatus.CANCELED}
    assert flt.older_than == 3600 and flt.needs_record
    done = info("job1", "FAILED", start_time=200.0, end_time=1000.0)
    assert matches(done, flt, now=1000.0 + 3600)
    assert not matches(done, flt, now=1000.0 + 3599)
    assert not matches(info("x", "FAILED", end_time=0.0), flt, now=1e9)  # prefix
    running = info("job2", "RUNNING", start_time=500.0)
    assert age_reference(running) == 500.0
    assert age_reference(info("j", "PENDING")) == 100.0
    assert age_reference(info("j", "CANCELED", updated_at=700.0)) == 700.0
    assert matches(done, WorkflowFilter.of(name="etl"), 0) and not matches(
        done, WorkflowFilter.of(name="tl"), 0
    )
    assert matches(done, WorkflowFilter.of(name="jobs.etl"), 0)
    assert parse_age("0s") == 0 and parse_age("0") == 0 and parse_age(dt.timedelta()) == 0
    assert parse_age("30d") == 30 * 86400 and parse_age(dt.timedelta(hours=12)) == 43200
    for bad in ("", "-1s", "soon"):
        with pytest.raises(ValueError):
            parse_age(bad)
    with pytest.raises(ValueError):
        WorkflowFilter.of(status="DONE")
    assert WorkflowFilter.of().is_empty


N_KEEP, N_FAILED, N_OTHER = 20, 20, 10  # 50 workflows in all, on each backend
TOTAL = N_KEEP + N_FAILED + N_OTHER


def populate(client, tmp_path) -> Path:
    """20 keep-* SUCCESSFUL, 20 job-* FAILED, 10 job-o* SUCCESSFUL with another root name.

    Each group runs at once (``run_async``): on S3 one after another took a minute.
    """
    fail = tmp_path / "fail"
    keep = {
        i: client.run_async(
            flaky.options(task_id="flaky").bind(i, str(fail)), workflow_id=f"keep-{i:02d}"
        )
        for i in range(N_KEEP)
    }
    assert {i: future.result(60) for i, future in keep.items()} == {i: i for i in keep}
    fail.touch()
    failing = [
        client.run_async(
            flaky.options(task_id="flaky").bind(i, str(fail)), workflow_id=f"job-{i:02d}"
        )
        for i in range(N_FAILED)
    ]
    for future in failing:
        with pytest.raises(WorkflowExecutionError):
            future.result(60)
    others = {
        i: client.run_async(other.bind(i), workflow_id=f"job-o{i:02d}") for i in range(N_OTHER)
    }
    assert {i: future.result(60) for i, future in others.items()} == {i: -i for i in others}
    return fail


def test_bulk_actions_act_on_exactly_the_matching_workflows(client, tmp_path):
    fail = populate(client, tmp_path)
    store = client.store
    failed = [f"job-{i:02d}" for i in range(N_FAILED)]
    others = [f"job-o{i:02d}" for i in range(N_OTHER)]
    keep = [f"keep-{i:02d}" for i in range(N_KEEP)]
    assert select(store, WorkflowFilter.of(prefix="job-", status="FAILED")) == failed
    assert select(store, WorkflowFilter.of(prefix="job-", name="other")) == others
    assert select(store, WorkflowFilter.of(name="flaky", status="SUCCESSFUL")) == keep
    rows = select_statuses(store, WorkflowFilter.of(name="flaky", older_than="0s"))
    assert rows == [(w, WorkflowStatus.FAILED) for w in failed] + [
        (w, WorkflowStatus.SUCCESSFUL) for w in keep
    ]
    # older_than with an injected clock: nothing is an hour old now, everything is in 2 hours
    assert select(store, WorkflowFilter.of(older_than="1h")) == []
    later = time.time() + 7200
    assert len(select(store, WorkflowFilter.of(older_than="1h"), now=later)) == TOTAL
    assert len(select(store, WorkflowFilter.of(older_than="0s"))) == TOTAL

    dry = delete_all(client, prefix="job-", status="FAILED", dry_run=True)
    assert dry.selected == failed and dry.acted == [] and dry.dry_run
    assert len(client.list_all()) == TOTAL

    # resume the failed ones once the cause is fixed; the others are not touched
    fail.unlink()
    result = resume_all(client, include_failed=True, prefix="job-", workers=4)
    assert result.acted == failed and result.failed == {}
    assert {s for w, s in client.list_all() if w in failed} == {WorkflowStatus.SUCCESSFUL}
    assert resume_all(client, include_failed=True).selected == []  # nothing left to resume

    # cancel_all: only what is not finished; a RUNNING one is canceled too
    fail.touch()
    for w in failed[:5]:
        restart(store, client.leases, w, ["flaky"])  # RESUMABLE again
    result = cancel_all(client, prefix="job-")
    assert result.acted == failed[:5] and result.failed == {}
    assert {client.get_status(w) for w in failed[:5]} == {WorkflowStatus.CANCELED}
    assert {client.get_status(w) for w in failed[5:]} == {WorkflowStatus.SUCCESSFUL}

    # delete_all: one that cannot be deleted (RUNNING) is reported, the rest are deleted
    started, gate = tmp_path / "started", tmp_path / "gate"
    busy = client.run_async(hold.bind(str(started), str(gate)), workflow_id="job-busy")
    wait_until(started.exists)
    result = delete_all(client, prefix="job-", status={"CANCELED", "RUNNING"}, workers=3)
    assert result.acted == failed[:5]
    assert list(result.failed) == ["job-busy"]
    assert result.failed["job-busy"].startswith("WorkflowStillActiveError")
    assert "1 failed" in result.summary() and "WorkflowStillActiveError: 1" in result.summary()
    gate.touch()
    assert busy.result(30) == 0
    remaining = [w for w, _ in client.list_all()]
    assert remaining == sorted([*failed[5:], "job-busy", *others, *keep])
    result = delete_all(client, prefix="job-")
    assert len(result.acted) == N_FAILED - 5 + 1 + N_OTHER and result.failed == {}
    assert [w for w, _ in client.list_all()] == keep
