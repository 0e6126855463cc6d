"""Helpers of the dashboard tests: a storage seeded with a workflow of every status.

A module of its own (not ``conftest``, a name other test folders use too), imported by the
tests and by this folder's conftest, which puts the folder on sys.path so that ``dashtasks``
imports the same way here and in the worker subprocesses (``durableflow worker --path``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dashtasks
import pytest

from durableflow import Client, WorkflowExecutionError, WorkflowStatus

HERE = Path(__file__).parent


def wait_until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.02)


class Seeded:
    """A storage with one workflow in each status (and more made on request)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.storage = str(root / "store")
        self.runner = Client(self.storage, cancel_poll=0.05)
        self._files = itertools.count()
        self.flags: dict[str, str] = {}

    def file(self) -> str:
        return str(self.root / f"file-{next(self._files)}")

    def status(self, workflow_id: str) -> WorkflowStatus:
        return self.runner.get_status(workflow_id)

    def successful(self, workflow_id: str, **metadata: Any) -> None:
        self.runner.run(dashtasks.diamond(), workflow_id=workflow_id, metadata=metadata)

    def failed(self, workflow_id: str) -> str:
        """A FAILED workflow; creating the returned file makes its resume succeed."""
        flag = self.file()
        with pytest.raises(WorkflowExecutionError):
            self.runner.run(dashtasks.fail_unless.bind(flag, 7), workflow_id=workflow_id)
        self.flags[workflow_id] = flag
        return flag

    def running(self, workflow_id: str) -> str:
        """A workflow blocked in its task in this process; the returned file frees it."""
        release = self.file()
        self.runner.run_async(dashtasks.wait_file.bind(release, 5), workflow_id=workflow_id)
        wait_until(lambda: self.status(workflow_id) is WorkflowStatus.RUNNING)
        wait_until(  # its attempt record is written once it has run RECORD_AFTER seconds
            lambda: (
                self.runner.get_metadata(workflow_id, "dashtasks.wait_file")["status"] == "RUNNING"
            )
        )
        return release

    def pending(self, workflow_id: str) -> None:
        self.runner.submit(dashtasks.source.bind(1), workflow_id=workflow_id)

    def canceled(self, workflow_id: str) -> None:
        self.pending(workflow_id)
        self.runner.cancel(workflow_id)

    def resumable(self, workflow_id: str) -> None:
        self.successful(workflow_id)
        self.runner.restart(workflow_id, "b")

    def every_status(self) -> Seeded:
        self.successful("ok-1", note="</script><script>alert(1)</script>")
        self.failed("bad-1")
        self.pending("wait-1")
        self.canceled("stop-1")
        self.resumable("again-1")
        self.flags["run-1"] = self.running("run-1")
        return self

    def close(self) -> None:
        for flag in self.flags.values():
            Path(flag).touch()
        self.runner.close(wait=True)
