"""Helpers of the CLI tests: run the ``durableflow`` command; a storage with every status.

Commands run in this process through click's ``CliRunner`` (:func:`run_cli`): starting a
Python process per command cost the suite 30-40 s. :func:`run_cli_process` runs the installed
console script, for what only a process shows (the entry points, log lines on stderr, signals).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import ctasks
import pytest
from click.testing import CliRunner

from durableflow import Client, WorkflowExecutionError, WorkflowStatus
from durableflow.cli import cli
from helpers import wait_until

HERE = Path(__file__).parent
CONSOLE = Path(sys.executable).with_name("durableflow")


class Result:
    """What one command did."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def json(self) -> Any:
        return json.loads(self.out)

    def one_line_error(self) -> str:
        """The error line; fails unless it is one line without a traceback."""
        assert "Traceback" not in self.err, self.err
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("Error: "), self.err
        return lines[0]


def run_cli(
    storage: str | None, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> Result:
    """``durableflow [--storage S] ARGS`` in this process, through click's CliRunner.

    An exception the CLI did not turn into an exit code is raised here (where a process would
    have printed a traceback), so no test passes on a crash.
    """
    command = ["--storage", storage] if storage is not None else []
    done = CliRunner().invoke(
        cli, [*command, *args], input=stdin or "", env=env, prog_name="durableflow"
    )
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise done.exception
    return Result(done.exit_code, done.stdout, done.stderr)


def run_cli_process(storage: str | None, *args: str, stdin: str | None = None) -> Result:
    """``durableflow [--storage S] ARGS`` through the installed console script."""
    command = [str(CONSOLE)] if CONSOLE.exists() else [sys.executable, "-m", "durableflow.cli"]
    if storage is not None:
        command += ["--storage", storage]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        input=stdin if stdin is not None else "",
    )
    return Result(done.returncode, done.stdout, done.stderr)


class World:
    """A storage with one workflow per status, and helpers to add more."""

    BASE = {
        "ok": "SUCCESSFUL",
        "failed": "FAILED",
        "pending": "PENDING",
        "canceled": "CANCELED",
        "running": "RUNNING",
        "resumable": "RESUMABLE",
    }

    def __init__(self, root: Path) -> None:
        self.root = root
        self.storage = str(root / "store")
        self.runner = Client(self.storage, cancel_poll=0.05)
        self._files = itertools.count()
        self.made: list[Path] = []

    def file(self) -> str:
        """A fresh path under the root; touched when the world closes (frees waiting tasks)."""
        path = self.root / f"file{next(self._files)}"
        self.made.append(path)
        return str(path)

    def cli(self, *args: str, stdin: str | None = None) -> Result:
        return run_cli(self.storage, *args, stdin=stdin)

    def status(self, workflow_id: str) -> WorkflowStatus:
        return self.runner.get_status(workflow_id)

    def running(self, workflow_id: str) -> str:
        """Start a workflow blocked in its task in this process; return the file that frees it."""
        release = self.file()
        self.runner.run_async(ctasks.wait_file.bind(release, 5), workflow_id=workflow_id)
        wait_until(lambda: self.status(workflow_id) is WorkflowStatus.RUNNING)
        return release

    def resumable(self, workflow_id: str, value: int = 6) -> None:
        """A workflow stopped by its runner's shutdown: RESUMABLE."""
        other = Client(self.storage, cancel_poll=0.05)
        release = self.file()
        other.run_async(ctasks.wait_file.bind(release, value), workflow_id=workflow_id)
        wait_until(lambda: self.status(workflow_id) is WorkflowStatus.RUNNING)
        other.close(wait=False)
        Path(release).touch()
        assert self.status(workflow_id) is WorkflowStatus.RESUMABLE

    def failed(self, workflow_id: str, value: int = 1) -> str:
        """A FAILED workflow; creating the returned file makes its resume succeed."""
        flag = self.file()
        with pytest.raises(WorkflowExecutionError):
            self.runner.run(ctasks.fail_unless.bind(flag, value), workflow_id=workflow_id)
        return flag

    def build(self) -> World:
        self.runner.run(
            ctasks.outer.options(task_id="outer").bind(41),
            workflow_id="ok",
            metadata={"owner": "cli-test"},
        )
        self.failed("failed")
        self.runner.submit(ctasks.answer.bind(1), workflow_id="pending")
        self.runner.submit(ctasks.answer.bind(2), workflow_id="canceled")
        self.runner.cancel("canceled")
        self.running("running")
        self.resumable("resumable")
        assert {w: s.value for w, s in self.runner.list_all()} == self.BASE
        return self

    def close(self) -> None:
        for path in self.made:
            path.touch()
        self.runner.close(wait=False)
