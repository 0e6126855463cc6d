"""The engine on an ordered storage (SQLite): which writes wait for a sync, and which do not.

A checkpoint is committed without a sync; before the next task starts, or with the workflow's
final status, one sync covers it. A power cut keeps a prefix of the commits, so no later write
(another task's checkpoint, a final status) can survive without it. These tests log every sync
of the storage next to the writes and check that order, and the count of syncs a one-task
workflow pays (its start and its end).
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest

from durableflow import Client, WorkflowExecutionError, task
from durableflow.storage.sqlite import SQLiteStorage

EVENTS: list[str] = []
_EVENTS_LOCK = threading.Lock()


def log_event(event: str) -> None:
    with _EVENTS_LOCK:
        EVENTS.append(event)


class LoggingSQLite(SQLiteStorage):
    """Logs creates of checkpoints and every sync, in order, into EVENTS (this process's)."""

    def create(self, key: str, data: bytes) -> bool:
        created = super().create(key, data)
        if "/outputs/" in key:
            log_event("output " + key.rpartition(".")[2])
        return created

    def _sync_through(self, generation: int) -> None:
        super()._sync_through(generation)
        log_event("sync")

    def sync(self) -> None:
        super().sync()
        log_event("sync")


@task
def inc(x: int) -> int:
    log_event("run inc")
    return x + 1


@task
def one(x: int) -> int:
    return x


@task
def fails_once(x: int, flag: str) -> int:
    log_event("run fails_once")
    if not Path(flag).exists():
        Path(flag).touch()
        raise RuntimeError("first attempt fails")
    return x


def test_each_checkpoint_is_synced_before_the_next_task_and_the_final_status(
    tmp_path: Path,
) -> None:
    storage = LoggingSQLite(tmp_path / "wf.db")
    with Client(storage) as client:
        node = inc.bind(0)
        for _ in range(4):
            node = inc.bind(node)
        EVENTS.clear()
        assert client.run(node, workflow_id="chain") == 5
    events = list(EVENTS)
    outputs = [i for i, event in enumerate(events) if event.startswith("output")]
    assert len(outputs) == 5, events
    for here, following in itertools.pairwise(outputs):
        between = events[here + 1 : following]
        # one sync (not one per write), and before the next task runs
        assert between.count("sync") == 1, events
        assert between.index("sync") < between.index("run inc"), events
    assert "sync" in events[outputs[-1] :], events  # the final status covers the last one


def test_a_one_task_workflow_costs_two_syncs(tmp_path: Path) -> None:
    storage = LoggingSQLite(tmp_path / "wf.db")
    with Client(storage) as client:
        client.run(one.bind(0), workflow_id="warm")
        before = storage._group().syncs
        for i in range(5):
            assert client.run(one.bind(i), workflow_id=f"w{i}") == i
        assert storage._group().syncs - before == 10  # its start, and its end


def test_a_resume_syncs_what_it_found_before_it_runs_a_task(tmp_path: Path) -> None:
    """A crashed runner may leave checkpoints unsynced: a resume syncs before a task runs."""
    storage = LoggingSQLite(tmp_path / "wf.db")
    flag = str(tmp_path / "flag")
    with Client(storage) as client:
        node = fails_once.bind(inc.bind(1), flag)
        with pytest.raises(WorkflowExecutionError):
            client.run(node, workflow_id="w")
        EVENTS.clear()
        assert client.resume("w") == 2
    events = list(EVENTS)
    assert events.index("run fails_once") > events.index("sync"), events
    assert "run inc" not in events  # its checkpoint was kept
