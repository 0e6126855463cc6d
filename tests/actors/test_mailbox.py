"""``send``: calls stored from another process without waiting, drained by a worker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from actor_classes import Counter

from durableflow import Client
from durableflow.actors import actor_calls, actor_info, drain_mailboxes
from durableflow.worker import Worker
from helpers import wait_until

PROG = str(Path(__file__).with_name("actor_prog.py"))


def send_from_another_process(storage_url: str, env: dict[str, str], n: int) -> list[int]:
    config = {"storage": storage_url, "actor_id": "inbox", "op": "send", "n": n}
    proc = subprocess.run(
        [sys.executable, PROG, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.strip().splitlines()[-1])["results"])


def test_send_from_another_process_is_drained_by_a_serving_worker(
    client: Client, storage_url: str, child_env: dict[str, str]
) -> None:
    assert send_from_another_process(storage_url, child_env, 3) == [1, 2, 3]
    info = actor_info("inbox", client=client)
    assert (info.committed, info.pending) == (0, (1, 2, 3))  # nobody waits: nothing applied
    assert [c.mode for c in actor_calls("inbox", client=client)] == ["send"] * 3

    worker = Worker(client, schedules=False, resume=False, prune_every=0, poll_interval=0.05)
    thread = threading.Thread(target=worker.serve, daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: (
                actor_info("inbox", client=client).committed == 3
                and client.storage.list("v1/actor-mailbox/") == []
            ),  # drained to the end
            timeout=60,
        )
    finally:
        worker.shutdown(grace=5)
        thread.join(30)
    assert worker.actor_calls_applied == 3
    assert Counter.using(client).get_or_create("inbox", 0).get.run() == 3


def test_sent_calls_are_applied_before_a_later_run_and_by_drain_mailboxes(
    file_client: Client,
) -> None:
    handle = Counter.using(file_client).get_or_create("inbox", 0)
    assert [handle.incr.send(1), handle.incr.send(2)] == [1, 2]
    assert handle.get.run() == 0
    assert handle.incr.run(10) == 13  # the two sent calls first, in order
    handle.incr.send(100)
    assert drain_mailboxes(file_client) == {"inbox": 1}
    assert handle.get.run() == 113
    assert drain_mailboxes(file_client) == {}


def test_a_durableflow_worker_process_drains_calls_sent_here(
    file_client: Client, file_url: str, child_env: dict[str, str]
) -> None:
    handle = Counter.using(file_client).get_or_create("inbox", 0)
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "durableflow.cli", "--storage", file_url),
            *("-v", "worker", "--poll-interval", "0.05", "--no-schedules", "--prune-every", "0"),
        ],
        cwd=str(Path(__file__).parent),  # the CLI imports actor_classes from its directory
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert [handle.incr.send(n) for n in (1, 2, 3)] == [1, 2, 3]
        deadline = time.monotonic() + 60
        while actor_info("inbox", client=file_client).committed < 3:
            assert time.monotonic() < deadline and worker.poll() is None, "not drained"
            time.sleep(0.01)
        assert handle.get.run() == 6
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=60)
        print(err)  # the worker's log, shown by pytest on a failure
    assert worker.returncode == 0, err
