"""Write the golden stores of tests/integration/test_golden_store.py. DO NOT RE-RUN CASUALLY.

The stores under ``tests/data/golden/`` were written once, by the code of the day they were
made (storage layout v1), and are checked in. The test opens copies of them with today's code:
a later change of the storage format must keep reading them (or migrate them). Re-running this
script writes new stores with the *current* code, which would turn the test into a check that
the code reads its own output: only do it for a deliberate, reviewed reason (say, a new
workflow state to pin), and keep the old stores beside the new ones.

Usage (from the repository root, with no DURABLEFLOW_* variable set)::

    python tests/data/make_golden.py tests/data/golden

It writes ``file/`` (file storage) and ``workflows.db`` (SQLite), each holding:

=============  ===========  ========================================================
workflow id    status       what
=============  ===========  ========================================================
``ok``         SUCCESSFUL   add(1, 2) = 3, with user metadata {"team": "golden"}
``failed``     FAILED       fragile(add(2, 3)) raised; resumes to 50
``resumable``  RESUMABLE    crash_while_generating(add(1, 1)): its process was killed
                            after add's checkpoint; resumes to 102
``continued``  SUCCESSFUL   countdown(3): three continuations, "liftoff"
``event``      SUCCESSFUL   shout(wait_for_event(ArrivedListener, "hello")) = "HELLO"
``canceled``   CANCELED     hold(gate file), canceled while running
``pending``    PENDING      add(5, 6), submitted for a worker
=============  ===========  ========================================================

and the schedule ``nightly`` (cron ``0 3 * * *`` in Europe/Paris, catchup all, metadata).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import golden_tasks as gt  # noqa: E402

from durableflow import Client, WorkflowStatus, workflow  # noqa: E402
from durableflow.errors import WorkflowCancellationError, WorkflowExecutionError  # noqa: E402


def populate(url: str) -> None:
    """Write every workflow and the schedule of the table above into ``url``."""
    os.environ["DF_GOLDEN_GENERATING"] = "1"
    with Client(url) as client:
        client.run(gt.add.bind(1, 2), workflow_id="ok", metadata={"team": "golden"})
        with contextlib.suppress(WorkflowExecutionError):
            client.run(gt.fragile.bind(gt.add.bind(2, 3)), workflow_id="failed")
        assert client.run(gt.countdown.bind(3), workflow_id="continued") == "liftoff"
        event = workflow.wait_for_event(gt.ArrivedListener, "hello")
        assert client.run(gt.shout.bind(event), workflow_id="event") == "HELLO"
        gate = Path(url.removeprefix("sqlite://") + ".gate")
        future = client.run_async(gt.hold.bind(str(gate)), workflow_id="canceled")
        deadline = time.monotonic() + 30
        while client.get_status("canceled") is not WorkflowStatus.RUNNING:
            assert time.monotonic() < deadline, "canceled never started"
            time.sleep(0.01)
        client.cancel("canceled")
        gate.touch()
        with contextlib.suppress(WorkflowCancellationError, WorkflowExecutionError):
            future.result(timeout=30)
        gate.unlink()
        client.submit(gt.add.bind(5, 6), workflow_id="pending")
        client.schedule(
            "nightly",
            gt.nightly_dag,
            cron="0 3 * * *",
            timezone="Europe/Paris",
            catchup="all",
            metadata={"team": "golden"},
        )
    # RESUMABLE: a process killed in the middle of the workflow, after add's checkpoint.
    env = {**os.environ, "DF_GOLDEN_CRASH": "1"}
    done = subprocess.run([sys.executable, __file__, "--crash", url], env=env, check=False)
    assert done.returncode == 3, f"the crashing child exited {done.returncode}"


def crash(url: str) -> None:
    """In a child process: run ``resumable`` until its second task kills the process."""
    with Client(url) as client:
        client.run(gt.crash_while_generating.bind(gt.add.bind(1, 1)), workflow_id="resumable")
    raise SystemExit("crash_while_generating did not kill the process")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--crash"]:
        crash(argv[1])
        return
    if len(argv) != 1 or any(k.startswith("DURABLEFLOW_") for k in os.environ):
        raise SystemExit(__doc__)
    out = Path(argv[0]).resolve()
    if out.exists():
        raise SystemExit(f"{out} exists: the golden stores are not rewritten (see the docstring)")
    out.mkdir(parents=True)
    populate(str(out / "file"))
    populate(f"sqlite://{out / 'workflows.db'}")
    # The killed child's commits are in the write-ahead log: fold them into the database
    # file (never delete a -wal file: that loses them), so one file is checked in.
    connection = sqlite3.connect(out / "workflows.db")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    assert not (out / "workflows.db-wal").exists()
    shutil.rmtree(out / "file" / ".locks", ignore_errors=True)
    print(f"golden stores written to {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
