"""The CLI's read commands go through a Reader (issue 12.2): no Client, executor or Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from clitools import World

from durableflow.client import core

pytestmark = pytest.mark.timeout(120)


def test_read_commands_open_no_client(world: World, monkeypatch: pytest.MonkeyPatch):
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a read command opened a Client")

    monkeypatch.setattr(core.Client, "__init__", refuse)
    task_id = world.runner.list_tasks("ok")[0]["task_id"]
    for args in (
        ("list",),
        ("list", "--limit", "2", "--json"),
        ("list", "--status", "FAILED", "--since", "1h"),
        ("status", "running"),
        ("show", "ok"),
        ("show", "failed", "--json"),
        ("output", "ok"),
        ("output", "ok", "--task", task_id),
        ("metadata", "ok"),
        ("metadata", "ok", "--task", task_id),
        ("env", "show", "ok"),
        ("env", "diff", "ok"),
    ):
        result = world.cli(*args)
        assert result.code == 0, (args, result.err)


def test_list_shows_the_most_recent_newest_first(world: World):
    everything = world.cli("list", "--json").json()
    created = [r["created_at"] for r in everything]
    assert created == sorted(created, reverse=True)
    first_two = world.cli("list", "--limit", "2", "--json").json()
    # (ids only: a RUNNING workflow's duration grows between the two calls)
    assert [r["workflow_id"] for r in first_two] == [r["workflow_id"] for r in everything[:2]]
    assert all(r["root_task_id"] for r in everything)


def test_list_shows_fifty_by_default_and_all_on_request(tmp_path):
    import ctasks
    from clitools import run_cli

    from durableflow import Client

    store = str(tmp_path / "store")
    with Client(store) as client:
        for n in range(53):
            client.run(ctasks.plus_one.bind(n), workflow_id=f"w{n:02d}")

    shown = run_cli(store, "list", "--json").json()
    assert len(shown) == 50 and shown[0]["workflow_id"] == "w52"
    assert len(run_cli(store, "list", "--all", "--json").json()) == 53
    table = run_cli(store, "list")
    assert "--limit N or --all for more" in table.out
    assert "ROOT TASK" in table.out


def test_status_with_the_ray_executor_in_the_environment_does_not_import_ray(world: World):
    """``durableflow status`` used to open a Client, whose ray executor called ``ray.init``."""
    pytest.importorskip("ray")
    script = (
        "import sys\n"
        "from durableflow.cli import main\n"
        "try:\n"
        f"    main(['--storage', {world.storage!r}, 'status', 'ok'])\n"
        "except SystemExit as done:\n"
        "    assert done.code in (0, None), done.code\n"
        "print('ray imported' if 'ray' in sys.modules else 'ray not imported')\n"
    )
    env = {**os.environ, "DURABLEFLOW_EXECUTOR": "ray"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SUCCESSFUL", "ray", "not", "imported"]


def test_read_commands_on_a_storage_being_written_by_a_client_agree_with_it(world: World):
    listed = {r["workflow_id"]: r["status"] for r in world.cli("list", "--json").json()}
    assert listed == {w: s.value for w, s in world.runner.list_all()}
    for workflow_id in listed:
        assert world.cli("status", workflow_id).out.strip() == listed[workflow_id]


def test_list_short_gives_ids_and_statuses_by_id_and_prefix_filters(world: World):
    short = world.cli("list", "--short", "--json").json()
    assert short == [{"workflow_id": w, "status": s.value} for w, s in world.runner.list_all()]
    first = world.cli("list", "--short", "--limit", "2", "--json").json()
    assert first == short[:2]
    table = world.cli("list", "--short").out
    assert "START" not in table and "canceled" in table and "CANCELED" in table
    assert [r["workflow_id"] for r in world.cli("list", "--prefix", "r", "--json").json()] == [
        "resumable",
        "running",
    ]  # newest first
