"""Task functions the worker tests run; importable by worker subprocesses (``--path``)."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from durableflow import workflow


def _append(path: str, line: str) -> None:
    with open(path, "a") as handle:
        handle.write(line + "\n")


@workflow.task
def record(log: str, label: str, value: int) -> int:
    """Append ``label pid`` to ``log`` and return ``value``."""
    _append(log, f"{label} {os.getpid()}")
    return value


@workflow.task
def wait_for(go: str, started: str, log: str, label: str, value: int) -> int:
    """Touch ``started``, wait for the file ``go``, then log ``label`` and return ``value + 1``."""
    Path(started).touch()
    while not os.path.exists(go):
        time.sleep(0.01)
    _append(log, f"{label} {os.getpid()}")
    return value + 1


@workflow.task
def guarded(running_dir: str, counts: str, limit: int, label: str, hold: float) -> str:
    """Count the guarded tasks running now (one file each); fail if more than ``limit``."""
    mine = Path(running_dir) / label
    mine.touch()
    try:
        now = len(os.listdir(running_dir))
        _append(counts, str(now))
        if now > limit:
            raise RuntimeError(f"{now} workflows running at once, limit {limit}")
        time.sleep(hold)
        return label
    finally:
        mine.unlink()


def tick_dag(log: str, when: dt.datetime):  # type: ignore[no-untyped-def]
    """A schedule's DAG factory: one task logging the tick time."""
    return record.options(task_id="tick").bind(log, when.strftime("%Y-%m-%dT%H:%M:%SZ"), 1)


def slow_tick_dag(go: str, log: str, when: dt.datetime):  # type: ignore[no-untyped-def]
    """A tick that runs until the file ``go`` exists."""
    label = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return wait_for.options(task_id="tick").bind(go, go + "." + label, log, label, 0)


def broken_factory(when: dt.datetime):  # type: ignore[no-untyped-def]
    """A DAG factory that raises."""
    raise RuntimeError("cannot build today's DAG")
