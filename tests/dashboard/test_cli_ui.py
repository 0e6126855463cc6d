"""``durableflow ui`` and ``durableflow worker --ui``: option checks, and a worker serving it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

from click.testing import CliRunner
from dashseed import HERE, Seeded, wait_until

from durableflow.cli._common import CliState
from durableflow.cli.ui import ui
from durableflow.cli.worker import worker


def test_ui_refuses_a_non_local_bind_without_token(seeded: Seeded) -> None:
    result = CliRunner().invoke(
        ui, ["--host", "0.0.0.0", "--port", "0"], obj=CliState(seeded.storage), env={}
    )
    assert result.exit_code == 2
    assert "without a token" in result.output and "--token" in result.output


def test_worker_ui_refuses_a_non_local_bind_without_token(seeded: Seeded) -> None:
    result = CliRunner().invoke(
        worker,
        ["--ui", "--ui-host", "0.0.0.0", "--once", "--no-schedules"],
        obj=CliState(seeded.storage),
        env={},
    )
    assert result.exit_code == 2 and "without a token" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_serves_the_dashboard_beside_its_runs(empty: Seeded) -> None:
    empty.successful("before")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "durableflow",
            "--storage",
            empty.storage,
            "worker",
            "--ui",
            "--ui-port",
            str(port),
            "--path",
            str(HERE),
            "--poll-interval",
            "0.2",
            "--no-schedules",
            "--prune-every",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def answer() -> dict[str, object] | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/workers") as r:
                    return json.loads(r.read())  # type: ignore[no-any-return]
            except OSError:
                return None

        workers = wait_until(lambda: (a := answer()) and a["workers"] and a, timeout=30)
        assert workers["workers"][0]["pid"] == proc.pid
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/workflows") as r:
            assert [w["workflow_id"] for w in json.loads(r.read())["workflows"]] == ["before"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
