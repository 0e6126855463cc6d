"""SIGKILL at each step of the call protocol (:mod:`durableflow.actors.runtime`), then the call
completes once: by the next caller, or by a worker.

The killed program calls ``Effects.incr(1)`` once on a fresh actor; the method appends a line
to a file each time its body runs. After the kill, this process calls ``incr(10)``: the killed
call is applied first (number 1, result 1), then ours (number 2, result 11). The state is 11
whichever step the kill hit -- never 1 (lost) or 12 (applied twice) -- and the body ran once
for the killed call unless the kill came between its start and its commit (then twice: the
body reruns; its effect on the state and its result commit once).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from actor_classes import Effects

from durableflow import Client
from durableflow.actors import actor_calls, actor_info
from durableflow.worker import Worker
from helpers import count_lines

PROG = str(Path(__file__).with_name("actor_prog.py"))

# (name, kill_at or None for a kill inside the method, body runs of the killed call)
STEPS = {
    "submit1-call-stored": ({"op": "create", "key": "/calls/", "when": "after"}, 1),
    "submit2-mailbox-marked": ({"op": "put", "key": "actor-mailbox/", "when": "after"}, 1),
    "drain1-lease-claimed": ({"op": "create", "key": "eff/lease", "when": "after"}, 1),
    "drain4-inside-the-method": (None, 2),
    "drain5-before-the-commit": ({"op": "create", "key": "/done/", "when": "before"}, 2),
    "drain5-after-the-commit": ({"op": "create", "key": "/done/", "when": "after"}, 1),
    "drain5-head-moved": ({"op": "put", "key": "eff/head", "when": "after"}, 1),
    "drain6-mailbox-cleared": ({"op": "delete", "key": "actor-mailbox/", "when": "after"}, 1),
    "drain7-releasing-the-lease": ({"op": "delete", "key": "eff/lease", "when": "before"}, 1),
}
EVERY_BACKEND = {"drain4-inside-the-method", "drain5-before-the-commit", "drain5-after-the-commit"}


def kill_during_first_call(
    storage_url: str, tmp_path: Path, env: dict[str, str], step: str
) -> dict[str, object]:
    kill_at, _ = STEPS[step]
    config: dict[str, object] = {
        "storage": storage_url,
        "actor_id": "eff",
        "op": "effects",
        "log": str(tmp_path / "body"),
    }
    if kill_at is None:
        config["kill_once"] = str(tmp_path / "killed")
    else:
        config["kill_at"] = kill_at
    env = {**os.environ, "PYTHONPATH": env["PYTHONPATH"]}  # S3 credentials set after env
    proc = subprocess.run(
        [sys.executable, PROG, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    return config


def check_applied_once(client: Client, step: str, log: Path, ours: int) -> None:
    _, body_runs = STEPS[step]
    calls = actor_calls("eff", client=client)
    assert [(c.seq, c.ok, c.result) for c in calls] == [(1, True, "1"), (2, True, str(ours))]
    assert count_lines(log) == {"incr": body_runs + 1}
    info = actor_info("eff", client=client)
    assert (info.committed, info.pending, info.owner) == (2, (), None)


def _cases() -> list[object]:
    """Every step on file storage; the steps around the commit on SQLite and S3 too."""
    return [
        pytest.param(backend, step, id=f"{backend}-{step}")
        for backend in ("file", "sqlite", "s3")
        for step in STEPS
        if backend == "file" or step in EVERY_BACKEND
    ]


@pytest.mark.parametrize(("backend", "step"), _cases())
def test_killed_call_completes_once_by_the_next_caller(
    backend: str,
    step: str,
    url_for: Callable[[str], str],
    tmp_path: Path,
    child_env: dict[str, str],
) -> None:
    storage_url = url_for(backend)
    config = kill_during_first_call(storage_url, tmp_path, child_env, step)
    with Client(storage_url) as client:
        handle = Effects.using(client).get_or_create("eff", str(config["log"]))
        assert handle.incr.run(10) == 11  # the killed call first, then this one
        assert handle.get.run() == 11
        check_applied_once(client, step, Path(str(config["log"])), 11)


@pytest.mark.parametrize("step", ["submit2-mailbox-marked", "drain5-before-the-commit"])
def test_killed_call_is_completed_by_a_worker(
    step: str, file_url: str, tmp_path: Path, child_env: dict[str, str]
) -> None:
    config = kill_during_first_call(file_url, tmp_path, child_env, step)
    with Client(file_url) as client:
        worker = Worker(client, schedules=False, resume=False, prune_every=0)
        try:
            assert worker.drain_actors() == ["eff"]
            assert worker.wait_actors(60)
            assert worker.actor_calls_applied == 1
            assert worker.drain_actors() == []  # the mailbox was cleared with the last call
        finally:
            worker.shutdown(grace=1)
        handle = Effects.using(client).get_or_create("eff", str(config["log"]))
        assert handle.get.run() == 1
        assert handle.incr.run(10) == 11
        check_applied_once(client, step, Path(str(config["log"])), 11)


def test_a_killed_writer_lease_is_taken_over_at_once(
    file_url: str, tmp_path: Path, child_env: dict[str, str]
) -> None:
    kill_during_first_call(file_url, tmp_path, child_env, "drain1-lease-claimed")
    with Client(file_url) as client:
        assert actor_info("eff", client=client).owner is not None  # the dead process's lease
        handle = Effects.using(client).get_or_create("eff", str(tmp_path / "body"))
        assert handle.incr.run(0) == 1  # took the dead writer's lease, applied its call first
        assert actor_info("eff", client=client).owner is None
