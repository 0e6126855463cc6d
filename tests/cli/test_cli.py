"""Every ``durableflow`` command against a real storage holding a workflow in each status:
exit codes, output, ``--json``, and the error cases.

Commands run in this process through click's CliRunner; the entry points (console script,
``python -m``), the worker's log lines and a worker serving in its own process run as
processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ctasks
import pytest
from clitools import World, run_cli, run_cli_process

from durableflow import Client, WorkflowStatus
from durableflow.runtime.environment import expand_environment
from helpers import wait_until

pytestmark = pytest.mark.timeout(120)


# --- the command itself -----------------------------------------------------------------------
def test_help_version_and_module_entry_point():
    helped = run_cli_process(None, "--help")  # the smoke test of the console script
    assert helped.code == 0
    for command in (
        "list",
        "status",
        "show",
        "output",
        "metadata",
        "resume",
        "resume-all",
        "cancel",
        "delete",
        "worker",
        "schedule",
        "env",
    ):
        assert command in helped.out
    assert run_cli(None, "--version").out.strip() == "durableflow 0.1.0"
    module = subprocess.run(
        [sys.executable, "-m", "durableflow.cli", "schedule", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert module.returncode == 0 and "add" in module.stdout


def test_default_storage_comes_from_the_environment(world: World, monkeypatch):
    monkeypatch.setenv("DURABLEFLOW_STORAGE", world.storage)
    listed = run_cli(None, "list", "--json")
    assert listed.code == 0
    assert {r["workflow_id"] for r in listed.json()} >= set(World.BASE)


# --- list ---------------------------------------------------------------------------------------
def test_list_table_and_json(world: World):
    table = world.cli("list")
    assert table.code == 0
    for workflow_id, status in World.BASE.items():
        assert any(workflow_id in line and status in line for line in table.out.splitlines()), (
            table.out
        )
    assert world.storage in table.out
    rows = {r["workflow_id"]: r for r in world.cli("list", "--json").json()}
    assert {w: rows[w]["status"] for w in World.BASE} == World.BASE
    ok = rows["ok"]
    assert ok["start_time"] <= ok["end_time"] and ok["duration"] == pytest.approx(
        ok["end_time"] - ok["start_time"]
    )
    assert rows["pending"]["start_time"] is None and rows["pending"]["duration"] is None


def test_list_filters(world: World):
    def ids(*args: str) -> set[str]:
        result = world.cli("list", "--json", *args)
        assert result.code == 0, result.err
        return {r["workflow_id"] for r in result.json()}

    assert ids("--status", "FAILED") == {"failed"}
    assert ids("--status", "failed", "--status", "Canceled") == {"failed", "canceled"}
    assert "resumable" in ids("--status", "RESUMABLE")
    assert ids("--since", "1h") >= set(World.BASE)
    assert ids("--since", "1ms") == set()
    newest = world.cli("list", "--json", "--limit", "2").json()
    everything = world.cli("list", "--json").json()
    assert [r["workflow_id"] for r in newest] == [r["workflow_id"] for r in everything[:2]]
    assert world.cli("list", "--status", "DONE").code == 2
    assert world.cli("list", "--since", "soon").code == 2
    assert world.cli("list", "--limit", "0").code == 2


# --- status, show, output, metadata ---------------------------------------------------------
def test_status_of_every_status(world: World):
    for workflow_id, status in World.BASE.items():
        plain = world.cli("status", workflow_id)
        assert (plain.code, plain.out.strip()) == (0, status)
        assert world.cli("status", workflow_id, "--json").json() == {
            "workflow_id": workflow_id,
            "status": status,
        }


def test_show_lists_tasks_with_continuations_under_their_parent(world: World):
    shown = world.cli("show", "ok")
    assert shown.code == 0, shown.err
    assert "SUCCESSFUL" in shown.out and '"owner": "cli-test"' in shown.out
    assert "Python" in shown.out and "packages" in shown.out
    lines = shown.out.splitlines()
    parent = next(i for i, line in enumerate(lines) if " outer " in line)
    child = next(i for i, line in enumerate(lines) if "└ inner" in line)
    assert child == parent + 1
    tasks = world.cli("show", "ok", "--json").json()["tasks"]
    assert [(t["task_id"], t["status"], t["parent"], t["depth"]) for t in tasks] == [
        ("outer", "SUCCESSFUL", None, 0),
        ("inner", "SUCCESSFUL", "outer", 1),
    ]
    assert tasks[1]["attempts"] == 1 and tasks[1]["duration"] >= 0


def test_show_failed_and_pending_workflows(world: World):
    failed = world.cli("show", "failed", "--json").json()
    assert failed["status"] == "FAILED" and failed["error"]["type"] == "builtins.ValueError"
    (task,) = failed["tasks"]
    assert (task["status"], task["attempts"]) == ("FAILED", 1)
    assert task["error"].startswith("ValueError: boom")
    assert "ValueError: boom" in world.cli("show", "failed").out
    (waiting,) = world.cli("show", "pending", "--json").json()["tasks"]
    assert waiting["status"] == "PENDING" and waiting["attempts"] == 0


def test_output(world: World):
    assert world.cli("output", "ok").out.strip() == "42"
    assert world.cli("output", "ok", "--json").json() == 42
    assert world.cli("output", "ok", "--task", "outer", "--json").json() == 42
    refused = {
        "failed": "failed",
        "running": "pass --wait",
        "pending": "PENDING",
        "canceled": "canceled",
        "resumable": "RESUMABLE",
        "nope": "no workflow 'nope'",
    }
    for workflow_id, text in refused.items():
        result = world.cli("output", workflow_id)
        assert result.code == 1, (workflow_id, result.out)
        assert text in result.one_line_error()
    assert world.cli("output", "ok", "--task", "missing").code == 1


def test_output_waits_when_asked_and_refuses_json_it_cannot_write(world: World):
    release = world.running("slow")
    Path(release).touch()
    waited = world.cli("output", "slow", "--wait", "--timeout", "60s")
    assert (waited.code, waited.out.strip()) == (0, "5")
    world.runner.run(ctasks.opaque.bind(), workflow_id="opaque")
    assert "Opaque object" in world.cli("output", "opaque").out
    assert "not JSON-serializable" in world.cli("output", "opaque", "--json").one_line_error()


def test_metadata(world: World):
    meta = world.cli("metadata", "ok").json()
    assert meta["status"] == "SUCCESSFUL" and meta["user_metadata"] == {"owner": "cli-test"}
    assert meta["runtime_env"]["python"] and meta["runtime_env"]["packages"]
    task = world.cli("metadata", "ok", "--task", "inner").json()
    assert task["task_id"] == "inner" and task["status"] == "SUCCESSFUL"
    assert world.cli("metadata", "running", "--json").json()["status"] == "RUNNING"


# --- resume, resume-all -----------------------------------------------------------------------
def test_resume(world: World):
    world.resumable("to-resume", value=9)
    resumed = world.cli("resume", "to-resume")
    assert (resumed.code, resumed.out.strip()) == (0, "9")
    assert world.status("to-resume") is WorkflowStatus.SUCCESSFUL
    assert world.cli("resume", "ok", "--json").json() == {
        "workflow_id": "ok",
        "status": "SUCCESSFUL",
    }
    assert "canceled" in world.cli("resume", "canceled").one_line_error()
    assert "RUNNING" in world.cli("resume", "running").one_line_error()
    still_failing = world.cli("resume", "failed")
    assert still_failing.code == 1 and "boom" in still_failing.one_line_error()


def test_resume_all_shows_progress_and_fails_if_one_fails(fresh: World):
    for i in range(3):
        fresh.resumable(f"r{i}", value=i)
    fixed = fresh.failed("fixed", 10)
    fresh.failed("broken", 11)
    Path(fixed).touch()
    only_resumable = fresh.cli("resume-all", "--json")
    assert only_resumable.code == 0, only_resumable.err
    assert only_resumable.json() == [
        {"workflow_id": f"r{i}", "status": "SUCCESSFUL", "error": None} for i in range(3)
    ]
    assert "[3/3]" in only_resumable.err
    with_failed = fresh.cli("resume-all", "--include-failed")
    assert with_failed.code == 1
    assert "fixed" in with_failed.out and "SUCCESSFUL" in with_failed.out
    assert "1 of 2 workflow(s) did not finish: broken" in with_failed.err
    assert fresh.status("fixed") is WorkflowStatus.SUCCESSFUL
    nothing = fresh.cli("resume-all")
    assert (nothing.code, nothing.out.strip()) == (0, "nothing to resume")


# --- cancel, delete ---------------------------------------------------------------------------
def test_cancel(world: World):
    world.running("to-cancel")
    canceled = world.cli("cancel", "to-cancel")
    assert (canceled.code, canceled.out.strip()) == (0, "to-cancel: CANCELED")
    assert world.status("to-cancel") is WorkflowStatus.CANCELED
    world.runner.submit(ctasks.answer.bind(3), workflow_id="queued-to-cancel")
    assert world.cli("cancel", "queued-to-cancel").code == 0
    assert "already SUCCESSFUL" in world.cli("cancel", "ok").one_line_error()
    assert "already CANCELED" in world.cli("cancel", "canceled").one_line_error()


def test_delete(world: World):
    world.failed("to-delete")
    aborted = world.cli("delete", "to-delete")  # no terminal to confirm on: aborted
    assert aborted.code == 1 and world.status("to-delete") is WorkflowStatus.FAILED
    confirmed = world.cli("delete", "to-delete", stdin="y\n")
    assert (confirmed.code, confirmed.out.strip()) == (0, "to-delete: deleted")
    assert "no workflow" in world.cli("status", "to-delete").one_line_error()
    world.failed("to-delete-2")
    assert world.cli("delete", "--yes", "to-delete-2").code == 0
    assert "cancel it before deleting" in world.cli("delete", "running", "--yes").one_line_error()
    assert "cancel it before deleting" in world.cli("delete", "pending", "--yes").one_line_error()


# --- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ("status", "nope"),
        ("show", "nope"),
        ("metadata", "nope"),
        ("cancel", "nope"),
        ("delete", "-y", "nope"),
        ("resume", "nope"),
        ("env", "diff", "nope"),
        ("output", "../etc"),
        ("status", "a/b"),
        ("schedule", "pause", "nope"),
        ("metadata", "ok", "--task", "nope"),
    ],
)
def test_wrong_ids_give_one_line_and_exit_1(world: World, args):
    result = world.cli(*args)
    assert result.code == 1, (result.out, result.err)
    result.one_line_error()


def test_bad_storage_url_gives_one_line(tmp_path: Path):
    for storage in ("bogus://x", "s3://"):
        result = run_cli(storage, "list")
        assert result.code == 1
        result.one_line_error()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = run_cli(str(blocked / "store"), "list")
    assert result.code == 1
    result.one_line_error()


def test_usage_errors_exit_2(world: World):
    assert world.cli("status").code == 2
    assert world.cli("frobnicate").code == 2
    assert (
        world.cli("schedule", "add", "x", "--dag", "ctasks:nightly").code == 2
    )  # no --cron / --every


# --- schedules --------------------------------------------------------------------------------
def test_schedule_commands(fresh: World):
    added = fresh.cli(
        "schedule",
        "add",
        "nightly",
        "--dag",
        "ctasks:nightly",
        "--cron",
        "0 3 * * *",
        "--timezone",
        "Europe/Paris",
        "--catchup",
        "skip",
        "--metadata",
        '{"team": "data"}',
        "--json",
    )
    assert added.code == 0, added.err
    info = added.json()
    assert (info["name"], info["cron"], info["timezone"], info["catchup"]) == (
        "nightly",
        "0 3 * * *",
        "Europe/Paris",
        "skip",
    )
    assert info["next_tick"].endswith(("T01:00:00Z", "T02:00:00Z"))
    every = fresh.cli("schedule", "add", "often", "--dag", "ctasks:answer", "--every", "1m")
    assert every.code == 1 and "answer()" in every.one_line_error()  # the task needs an argument
    assert (
        fresh.cli("schedule", "add", "often", "--dag", "ctasks:nightly", "--every", "1m").code == 0
    )
    listed = fresh.cli("schedule", "list", "--json").json()
    assert [s["name"] for s in listed] == ["nightly", "often"]
    table = fresh.cli("schedule", "list").out
    assert "every 1m" in table and "cron '0 3 * * *' (Europe/Paris)" in table
    assert fresh.cli("schedule", "show", "often").json()["every"] == 60
    assert fresh.cli("schedule", "pause", "often").out.strip() == "schedule often: paused"
    assert "already paused" in fresh.cli("schedule", "pause", "often").one_line_error()
    assert fresh.cli("schedule", "resume", "often").code == 0
    assert "not paused" in fresh.cli("schedule", "resume", "often").one_line_error()
    assert (
        "exists"
        in fresh.cli(
            "schedule", "add", "often", "--dag", "ctasks:nightly", "--every", "5m"
        ).one_line_error()
    )
    assert (
        fresh.cli(
            "schedule", "add", "often", "--dag", "ctasks:nightly", "--every", "5m", "--replace"
        ).code
        == 0
    )
    assert (
        "invalid cron expression"
        in fresh.cli(
            "schedule", "add", "bad", "--dag", "ctasks:nightly", "--cron", "* * *"
        ).one_line_error()
    )
    assert (
        "unknown time zone"
        in fresh.cli(
            "schedule",
            "add",
            "bad",
            "--dag",
            "ctasks:nightly",
            "--cron",
            "* * * * *",
            "--tz",
            "Mars/Base",
        ).one_line_error()
    )
    assert fresh.cli("schedule", "add", "bad", "--dag", "ctasks:missing", "--every", "1m").code == 2
    assert fresh.cli("schedule", "add", "bad", "--dag", "no-colon", "--every", "1m").code == 2
    assert fresh.cli("schedule", "remove", "often").code == 1  # not confirmed
    assert fresh.cli("schedule", "remove", "often", "--yes").code == 0
    assert [s["name"] for s in fresh.cli("schedule", "list", "--json").json()] == ["nightly"]


def test_worker_once_runs_what_waits(fresh: World):
    fresh.runner.submit(ctasks.answer.bind(5), workflow_id="queued")
    ran = run_cli_process(fresh.storage, "worker", "--once")  # its log lines go to stderr
    assert ran.code == 0, ran.err
    assert "started workflow queued" in ran.err
    assert fresh.status("queued") is WorkflowStatus.SUCCESSFUL


# --- env ----------------------------------------------------------------------------------------
def test_env_show_and_diff(fresh: World):
    fresh.runner.run(ctasks.answer.bind(1), workflow_id="envy")
    shown = fresh.cli("env", "show", "envy", "--json").json()
    assert shown["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "click" in shown["packages"] and "ctasks:answer" in shown["functions"]
    assert "ctasks:answer" in fresh.cli("env", "show", "envy").out
    assert "click" in fresh.cli("env", "show", "envy", "--packages").out
    same = fresh.cli("env", "diff", "envy", "--exit-code")
    assert (same.code, same.out.strip()) == (0, "workflow envy: environment unchanged")
    record = fresh.runner.store.read_run("envy")
    env = expand_environment(fresh.runner.store, record.runtime_env)
    env["packages"] = {**env["packages"], "click": "0.0.1"}
    env["functions"] = {**env["functions"], "ctasks:answer": "sha256:0000000000000000"}
    fresh.runner.store.write_run(record.replace(runtime_env=env))
    changed = fresh.cli("env", "diff", "envy")
    assert changed.code == 0
    assert "package click: 0.0.1 -> " in changed.out
    assert "task function ctasks:answer (task ctasks.answer): source changed" in changed.out
    assert fresh.cli("env", "diff", "envy", "--exit-code").code == 1
    data = fresh.cli("env", "diff", "envy", "--json").json()
    assert data["packages_changed"]["click"][0] == "0.0.1" and data["functions_changed"] == [
        "ctasks:answer"
    ]
    assert data["identical"] is False


def test_a_running_worker_is_watched_with_list(fresh: World, tmp_path: Path):
    """The README's story in small: submit, a worker runs it, `list` shows it finished."""
    worker = subprocess.Popen(
        [
            *(str(Path(sys.executable).with_name("durableflow")),),
            "--storage",
            fresh.storage,
            "worker",
            "--poll-interval",
            "0.05",
            "--path",
            str(Path(__file__).parent),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Client(fresh.storage) as client:
            client.submit(ctasks.answer.bind(8), workflow_id="watched")

        def finished() -> bool:
            rows = fresh.cli("list", "--json").json()
            return (
                rows == [{**rows[0], "workflow_id": "watched", "status": "SUCCESSFUL"}]
                if rows
                else False
            )

        wait_until(finished, timeout=30, interval=0.1)
        assert json.loads(fresh.cli("output", "watched", "--json").out) == {"answer": 8}
    finally:
        worker.terminate()
        assert worker.wait(timeout=30) == 0
