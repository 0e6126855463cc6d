"""The steering commands: restart, fork, resume-all/cancel-all/prune by filter, retention.

Each task appends its name to a log, so the tests count how often each one ran; bulk commands
are checked on what is stored afterwards (statuses, ids gone), never on timing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ctasks
import pytest
from clitools import World

from durableflow import Client, WorkflowStatus, workflow
from durableflow.cli import steering

DAY = 86400.0


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
def step(name: str, value: int, log: str) -> int:
    _log(log, name)
    return value + 1


def chain(log: str) -> Any:
    t1 = step.options(task_id="t1").bind("t1", 0, log)
    t2 = step.options(task_id="t2").bind("t2", t1, log)
    t3 = step.options(task_id="t3").bind("t3", t2, log)
    return step.options(task_id="t4").bind("t4", t3, log)


def run_chain(world: World, workflow_id: str) -> str:
    """Run a t1 -> t2 -> t3 -> t4 chain to SUCCESSFUL (output 4); return its log file."""
    log = str(world.root / f"{workflow_id}.log")
    assert world.runner.run(chain(log), workflow_id=workflow_id) == 4
    return log


def statuses(world: World) -> dict[str, str]:
    return {w: s.value for w, s in world.runner.list_all()}


# --- restart, fork ----------------------------------------------------------------------------
def test_restart_from_a_task_then_resume_runs_only_it_and_what_reads_it(fresh: World):
    log = run_chain(fresh, "wf")
    done = fresh.cli("restart", "wf", "--from", "t3")
    assert done.code == 0, done.err
    assert "wf: RESUMABLE (restart 1)" in done.out
    assert "runs again: t3, t4" in done.out
    assert fresh.status("wf") is WorkflowStatus.RESUMABLE
    assert counts(log) == {"t1": 1, "t2": 1, "t3": 1, "t4": 1}  # restart runs nothing
    resumed = fresh.cli("resume", "wf")
    assert resumed.code == 0, resumed.err
    assert resumed.out.strip() == "4"
    assert counts(log) == {"t1": 1, "t2": 1, "t3": 2, "t4": 2}
    assert fresh.status("wf") is WorkflowStatus.SUCCESSFUL
    shown = fresh.cli("show", "wf")
    assert "restart 1" in shown.out and "from t3 (2 task(s) set aside; was SUCCESSFUL)" in shown.out
    # --run resumes at once; several --from; --json names the tasks.
    again = fresh.cli("restart", "wf", "--from", "t2", "--from", "t4", "--json")
    assert again.code == 0, again.err
    assert again.json() == {
        "workflow_id": "wf",
        "status": "RESUMABLE",
        "restart": 2,
        "rerun": ["t2", "t3", "t4"],
        "forwarded": [],
    }
    ran = fresh.cli("restart", "wf", "--from", "t4", "--run")
    assert ran.code == 0, ran.err
    assert ran.out.strip() == "4"
    # restart 2's set-aside t2, t3 had not run again yet: they run now too, t1 never.
    assert counts(log) == {"t1": 1, "t2": 2, "t3": 3, "t4": 3}


def test_restart_refuses_a_running_workflow_and_a_canceled_one_without_allow_canceled(
    fresh: World,
):
    release = fresh.running("busy")
    refused = fresh.cli("restart", "busy", "--from", "t1")
    assert refused.code == 1
    assert "busy" in refused.one_line_error()
    assert fresh.status("busy") is WorkflowStatus.RUNNING
    Path(release).touch()
    log = run_chain(fresh, "stopped")
    fresh.runner.restart("stopped", "t4")
    fresh.runner.cancel("stopped")
    assert fresh.status("stopped") is WorkflowStatus.CANCELED
    canceled = fresh.cli("restart", "stopped", "--from", "t4")
    assert canceled.code == 1
    assert "stopped" in canceled.one_line_error()
    allowed = fresh.cli("restart", "stopped", "--from", "t4", "--allow-canceled", "--run")
    assert allowed.code == 0, allowed.err
    assert counts(log) == {"t1": 1, "t2": 1, "t3": 1, "t4": 2}
    assert fresh.cli("restart", "stopped").code == 2  # --from is required


def test_fork_copies_the_checkpoints_upstream_runs_nothing_and_survives_the_source(fresh: World):
    log = run_chain(fresh, "src")
    done = fresh.cli("fork", "src", "copy", "--from", "t3")
    assert done.code == 0, done.err
    assert done.out.splitlines()[0] == "copy: RESUMABLE, forked from src"
    assert counts(log) == {"t1": 1, "t2": 1, "t3": 1, "t4": 1}
    assert fresh.cli("delete", "src", "--yes").code == 0
    resumed = fresh.cli("resume", "copy")
    assert resumed.code == 0, resumed.err
    assert resumed.out.strip() == "4"
    assert counts(log) == {"t1": 1, "t2": 1, "t3": 2, "t4": 2}
    assert fresh.runner.get_metadata("copy")["forked_from"]
    assert "forked from  src (from task t3)" in fresh.cli("show", "copy").out
    taken = fresh.cli("fork", "copy", "copy")
    assert taken.code == 1
    taken.one_line_error()


# --- many at once -----------------------------------------------------------------------------
def test_resume_all_takes_the_filter_and_dry_run_changes_nothing(fresh: World):
    logs = {w: run_chain(fresh, w) for w in ("a1", "a2", "b1")}
    for workflow_id in logs:
        fresh.runner.restart(workflow_id, "t4")
    dry = fresh.cli("resume-all", "--prefix", "a", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.splitlines() == ["2 workflow(s) would be resumed", "  a1", "  a2"]
    assert all(counts(log)["t4"] == 1 for log in logs.values())
    done = fresh.cli("resume-all", "--prefix", "a", "--json")
    assert done.code == 0, done.err
    assert {r["workflow_id"]: r["status"] for r in done.json()} == {
        "a1": "SUCCESSFUL",
        "a2": "SUCCESSFUL",
    }
    assert fresh.status("b1") is WorkflowStatus.RESUMABLE
    assert [counts(logs[w])["t4"] for w in ("a1", "a2", "b1")] == [2, 2, 1]


def test_cancel_all_dry_run_then_refusal_without_a_terminal_then_yes(fresh: World):
    for i in range(25):
        fresh.runner.submit(ctasks.answer.bind(i), workflow_id=f"job-{i:02d}")
    fresh.runner.submit(ctasks.answer.bind(0), workflow_id="other")
    before = statuses(fresh)
    dry = fresh.cli("cancel-all", "--prefix", "job-", "--dry-run")
    assert dry.code == 0, dry.err
    lines = dry.out.splitlines()
    assert lines[0] == "25 workflow(s) would be canceled"
    assert lines[1:21] == [f"  job-{i:02d}" for i in range(20)]
    assert lines[21:] == ["  ... and 5 more"]
    assert statuses(fresh) == before
    refused = fresh.cli("cancel-all", "--prefix", "job-")  # CliRunner's stdin is no terminal
    assert refused.code == 1
    assert "--yes" in refused.one_line_error()
    assert statuses(fresh) == before
    done = fresh.cli("cancel-all", "--prefix", "job-", "--status", "pending", "--yes")
    assert done.code == 0, done.err
    assert "canceled 25 of 25 workflow(s)" in done.out
    assert "[25/25]" in done.err  # a big set shows progress (as lines when no terminal)
    after = statuses(fresh)
    assert {after[f"job-{i:02d}"] for i in range(25)} == {"CANCELED"}
    assert after["other"] == "PENDING"


def test_cancel_all_asks_on_a_terminal(fresh: World, monkeypatch: pytest.MonkeyPatch):
    fresh.runner.submit(ctasks.answer.bind(1), workflow_id="p1")
    monkeypatch.setattr(steering, "_is_terminal", lambda: True)
    declined = fresh.cli("cancel-all", stdin="n\n")
    assert declined.code == 1
    assert "Cancel 1 workflow(s)?" in declined.err
    assert fresh.status("p1") is WorkflowStatus.PENDING
    accepted = fresh.cli("cancel-all", stdin="y\n")
    assert accepted.code == 0, accepted.err
    assert fresh.status("p1") is WorkflowStatus.CANCELED


def test_cancel_all_reports_what_failed_and_why(fresh: World, monkeypatch: pytest.MonkeyPatch):
    for workflow_id in ("q1", "q2"):
        fresh.runner.submit(ctasks.answer.bind(1), workflow_id=workflow_id)
    real = Client.cancel

    def cancel(self: Client, workflow_id: str, timeout: float = 30.0) -> None:
        if workflow_id == "q1":
            raise TimeoutError("storage did not answer")
        real(self, workflow_id, timeout)

    monkeypatch.setattr(Client, "cancel", cancel)
    done = fresh.cli("cancel-all", "--yes")
    assert done.code == 1
    assert "q1: TimeoutError: storage did not answer" in done.out
    assert done.one_line_error() == "Error: 1 of 2 workflow(s) could not be canceled"
    assert fresh.status("q2") is WorkflowStatus.CANCELED
    assert fresh.status("q1") is WorkflowStatus.PENDING


def test_prune_with_the_policy_deletes_only_old_finished_workflows(fresh: World):
    for workflow_id in ("ok1", "ok2"):
        run_chain(fresh, workflow_id)
    fresh.failed("bad")
    run_chain(fresh, "again")
    fresh.runner.restart("again", "t4")  # RESUMABLE: never pruned by age
    fresh.runner.submit(ctasks.answer.bind(1), workflow_id="waiting")  # PENDING
    assert fresh.cli("retention", "set", "SUCCESSFUL=30d", "FAILED=90d").code == 0
    before = statuses(fresh)
    month = str(time.time() + 31 * DAY)
    dry = fresh.cli("prune", "--dry-run", "--now", month)
    assert dry.code == 0, dry.err
    assert dry.out.splitlines() == ["2 workflow(s) would be deleted", "  ok1", "  ok2"]
    assert statuses(fresh) == before
    assert fresh.cli("prune", "--now", month).code == 1  # no terminal, no --yes
    assert statuses(fresh) == before
    soon = fresh.cli("prune", "--yes", "--now", str(time.time() + DAY))
    assert soon.code == 0, soon.err
    assert soon.out.strip() == "nothing to prune"
    done = fresh.cli("prune", "--yes", "--now", month)
    assert done.code == 0, done.err
    assert done.out.splitlines()[0] == "deleted 2 of 2 selected"
    assert statuses(fresh) == {"bad": "FAILED", "again": "RESUMABLE", "waiting": "PENDING"}
    later = fresh.cli("prune", "--yes", "--json", "--now", str(time.time() + 91 * DAY))
    assert later.code == 0, later.err
    assert later.json()["deleted"] == ["bad"]
    assert statuses(fresh) == {"again": "RESUMABLE", "waiting": "PENDING"}


def test_prune_by_filter_and_without_filter_or_policy(fresh: World):
    fresh.failed("f1")
    run_chain(fresh, "s1")
    nothing = fresh.cli("prune", "--yes")
    assert nothing.code == 1
    assert "no retention policy" in nothing.one_line_error()
    done = fresh.cli("prune", "--status", "FAILED", "--yes")
    assert done.code == 0, done.err
    assert statuses(fresh) == {"s1": "SUCCESSFUL"}
    bad = fresh.cli("prune", "--older-than", "soon", "--yes")
    assert bad.code == 2


def test_retention_set_and_show_round_trip(fresh: World):
    empty = fresh.cli("retention", "show")
    assert empty.out.strip() == "no retention policy: nothing is pruned"
    done = fresh.cli(
        "retention", "set", "successful=30d", "FAILED=90d", "CANCELED=7d", "--keep-last", "100"
    )
    assert done.code == 0, done.err
    shown = fresh.cli("retention", "show", "--json")
    assert shown.code == 0, shown.err
    data = shown.json()
    assert data["ages"] == {"CANCELED": 7 * DAY, "FAILED": 90 * DAY, "SUCCESSFUL": 30 * DAY}
    assert data["keep_last"] == 100
    text = fresh.cli("retention", "show").out.splitlines()
    assert text[-1] == "schedules: the last 100 finished run(s) of each kept"
    assert len(text) == 4
    with Client(fresh.storage) as other:  # one policy for every process
        assert other.get_retention().to_json() == data
    running = fresh.cli("retention", "set", "RUNNING=1d")
    assert running.code == 1
    assert "never pruned by age" in running.one_line_error()
    assert fresh.cli("retention", "set", "SUCCESSFUL").code == 2
    assert fresh.cli("retention", "show", "--json").json() == data  # refused sets change nothing


def test_list_by_root_task_name(fresh: World):
    run_chain(fresh, "chain1")
    fresh.runner.run(ctasks.answer.bind(3), workflow_id="ans")
    named = fresh.cli("list", "--name", "step", "--json")
    assert named.code == 0, named.err
    assert [r["workflow_id"] for r in named.json()] == ["chain1"]
    assert [r["workflow_id"] for r in fresh.cli("list", "--name", "answer", "--json").json()] == [
        "ans"
    ]


def test_prune_exits_1_naming_a_delete_that_failed(fresh: World, monkeypatch: pytest.MonkeyPatch):
    from durableflow.errors import StorageError

    for workflow_id in ("d1", "d2"):
        run_chain(fresh, workflow_id)
    import durableflow.runtime.retention as retention

    real_stopped = retention.delete_stopped

    def delete_stopped(store: Any, leases: Any, workflow_id: str, *args: Any) -> bool:
        if workflow_id == "d1":
            raise StorageError("disk full")
        return real_stopped(store, leases, workflow_id, *args)

    monkeypatch.setattr(retention, "delete_stopped", delete_stopped)
    done = fresh.cli("prune", "--prefix", "d", "--yes")
    assert done.code == 1
    assert "skipped d1: StorageError: disk full" in done.out
    assert done.one_line_error() == "Error: 1 of 2 workflow(s) could not be deleted: d1"
    assert statuses(fresh) == {"d1": "SUCCESSFUL"}
