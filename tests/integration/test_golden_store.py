"""Stores of layout v1 written by an earlier durableflow still read, and resume, today.

``tests/data/golden/`` holds a file store and a SQLite store written once by
``tests/data/make_golden.py`` (see its docstring for what each workflow is, and why it must not
be re-run casually). Each test opens a copy, so the checked-in bytes never change. A change of
the storage format (issue 17) must keep these tests passing, by reading v1 or migrating it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from durableflow import Client, WorkflowStatus
from durableflow.runtime.ownership import Identity

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"

EXPECTED = {
    "canceled": WorkflowStatus.CANCELED,
    "continued": WorkflowStatus.SUCCESSFUL,
    "event": WorkflowStatus.SUCCESSFUL,
    "failed": WorkflowStatus.FAILED,
    "ok": WorkflowStatus.SUCCESSFUL,
    "pending": WorkflowStatus.PENDING,
    "resumable": WorkflowStatus.RESUMABLE,
}


def open_copy(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Client:
    """A Client on a fresh copy of the golden store of ``kind`` ("file" or "sqlite")."""
    monkeypatch.syspath_prepend(str(GOLDEN.parent))
    for name in list(os.environ):
        if name.startswith("DURABLEFLOW_"):
            monkeypatch.delenv(name)
    if kind == "file":
        shutil.copytree(GOLDEN / "file", tmp_path / "file")
        url = str(tmp_path / "file")
    else:
        shutil.copy(GOLDEN / "workflows.db", tmp_path / "workflows.db")
        url = f"sqlite://{tmp_path / 'workflows.db'}"
    return Client(url, cancel_poll=0.05)


@pytest.fixture(params=["file", "sqlite"])
def golden(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Client on a fresh copy of one golden store (no signing key, default policies).

    ``golden_tasks`` is importable, as the module of a user's tasks would be.
    """
    client = open_copy(request.param, tmp_path, monkeypatch)
    yield client
    client.close(wait=False)


def test_statuses_and_listing_are_read(golden: Client) -> None:
    assert dict(golden.list_all()) == EXPECTED
    for workflow_id, status in EXPECTED.items():
        assert golden.get_status(workflow_id) is status
    assert sorted(w for w, _ in golden.list_all(WorkflowStatus.SUCCESSFUL)) == [
        "continued",
        "event",
        "ok",
    ]


def test_outputs_and_checkpoints_are_read(golden: Client) -> None:
    assert golden.get_output("ok") == 3
    assert golden.get_output("continued") == "liftoff"  # through three continuations
    assert golden.get_output("event") == "HELLO"  # the event's checkpoint fed the task
    assert golden.get_output("failed", task_id="golden_tasks.add") == 5  # before the failure
    assert golden.get_output("resumable", task_id="golden_tasks.add") == 2  # before the kill


def test_metadata_is_read_in_rays_shape(golden: Client) -> None:
    ok = golden.get_metadata("ok")
    assert (ok["workflow_id"], ok["status"], ok["user_metadata"]) == (
        "ok",
        "SUCCESSFUL",
        {"team": "golden"},
    )
    assert ok["stats"]["start_time"] <= ok["stats"]["end_time"]
    assert ok["runtime_env"]["python"].count(".") == 2
    failed = golden.get_metadata("failed")
    assert failed["status"] == "FAILED"
    assert "broken while the golden store was generated" in str(failed["error"])
    task = golden.get_metadata("failed", task_id="golden_tasks.fragile")
    assert task["status"] == "FAILED"


def test_the_schedule_is_read(golden: Client) -> None:
    info = golden.get_schedule("nightly")
    assert (info["cron"], info["timezone"], info["catchup"], info["overlap"]) == (
        "0 3 * * *",
        "Europe/Paris",
        "all",
        "skip",
    )
    assert info["metadata"] == {"team": "golden"} and not info["paused"]
    assert [s["name"] for s in golden.list_schedules()] == ["nightly"]


def _written_by_this_python(client: Client) -> bool:
    python = client.get_metadata("ok")["runtime_env"]["python"]
    return python.split(".")[:2] == [str(n) for n in sys.version_info[:2]]


DEAD_PID = 2**22 + 4321
"""Above the kernel's largest pid (``pid_max`` <= 2**22): no process has it."""


def _lease_of_a_dead_process_here(client: Client) -> None:
    """Rewrite the lease of ``resumable`` in the copy: held by a dead process of this machine.

    The golden lease was written on another boot, so it belongs to "another machine": a claimer
    takes it over only after observing it unchanged for its whole TTL (30 s). Rewritten with this
    machine's identity and a pid no process has, its holder is dead at once (the same-machine
    rule), and the resume still reads the v1 run record, specs and outputs. The record is written
    by the engine's own call (compare-and-swap on the exact bytes read).
    """
    lease, raw = client.store.read_lease("resumable")
    assert lease is not None and raw is not None
    here = Identity.local()
    assert not here.matches(lease)  # what the slow test below waits out
    if not (here.boot_id and here.pid_ns):
        return  # an OS that does not tell them: no record is "of this machine", the wait stays
    dead = dataclasses.replace(
        lease,
        machine_id=here.machine_id,
        boot_id=here.boot_id,
        pid_ns=here.pid_ns,
        pid=DEAD_PID,
        pid_start="",
    )
    assert client.store.swap_lease("resumable", raw, dead)
    assert here.matches(client.store.read_lease("resumable")[0])


def _check_resumes(client: Client) -> None:
    if not _written_by_this_python(client):
        # Task functions are stored pickled by value (their bytecode): they load only on the
        # Python minor version that wrote them. The format checks above still run.
        pytest.skip("the golden store's task code was pickled by another Python version")
    assert client.get_status("resumable") is WorkflowStatus.RESUMABLE
    assert client.resume("failed") == 50
    assert client.resume("resumable") == 102
    assert client.get_status("failed") is WorkflowStatus.SUCCESSFUL
    assert client.get_status("resumable") is WorkflowStatus.SUCCESSFUL
    assert client.get_output("resumable", task_id="golden_tasks.add") == 2  # not re-run


def test_failed_and_resumable_workflows_resume_to_their_results(golden: Client) -> None:
    _lease_of_a_dead_process_here(golden)
    _check_resumes(golden)


@pytest.mark.skipif(
    not os.environ.get("DURABLEFLOW_SLOW"),
    reason="waits the golden lease's 30 s TTL, a lease of another machine (DURABLEFLOW_SLOW=1)",
)
def test_the_golden_foreign_lease_is_waited_out_then_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease as written (another boot: another machine) is taken over after its TTL."""
    client = open_copy("sqlite", tmp_path, monkeypatch)
    try:
        lease, _ = client.store.read_lease("resumable")
        assert lease is not None and not Identity.local().matches(lease)
        _check_resumes(client)
    finally:
        client.close(wait=False)


def test_the_golden_stores_are_layout_v1(tmp_path: Path) -> None:
    """What the tests above read is the v1 layout, in both backends, with nothing beside it."""
    file_keys = {
        p.relative_to(GOLDEN / "file").as_posix()
        for p in (GOLDEN / "file").rglob("*")
        if p.is_file()
    }
    # Even a read-only connection adds -wal and -shm files beside a WAL database: read a copy.
    shutil.copy(GOLDEN / "workflows.db", tmp_path / "copy.db")
    connection = sqlite3.connect(tmp_path / "copy.db")
    sqlite_keys = {row[0] for row in connection.execute("SELECT key FROM kv")}
    connection.close()
    for keys in (file_keys, sqlite_keys):
        assert {k.partition("/")[0] for k in keys} == {"v1"}
        assert {f"v1/workflows/{w}/run" for w in EXPECTED} <= keys
        assert "v1/schedules/nightly/spec" in keys and "v1/schedules/nightly/dag" in keys
        assert any(k.startswith("v1/workflows/event/outputs/") for k in keys)
        assert "v1/workflows/continued/specs/golden_tasks.countdown" in keys  # a continuation
    assert sorted(p.name for p in GOLDEN.iterdir()) == ["file", "workflows.db"]
