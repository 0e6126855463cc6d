"""Durable timers and external events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from durableflow import Client, WorkflowStatus, workflow
from durableflow.model.events import poll_for_event, wake_time
from helpers import wait_until


class FileListener(workflow.EventListener):
    """An external event: a file appearing; acknowledged by writing another."""

    async def poll_for_event(self, path: str) -> str:
        while not os.path.exists(path):
            await __import__("asyncio").sleep(0.005)
        return Path(path).read_text()

    async def event_checkpointed(self, event: str) -> None:
        Path(os.environ["DF_ACK"]).write_text(event)


@workflow.task
def shout(text: str) -> str:
    return text.upper()


def test_wait_for_event_output_is_the_event_and_it_is_acknowledged(wf, tmp_path, monkeypatch):
    monkeypatch.setenv("DF_ACK", str(tmp_path / "ack"))
    signal_file = tmp_path / "signal"
    future = workflow.run_async(
        shout.bind(workflow.wait_for_event(FileListener, str(signal_file))), workflow_id="ev"
    )
    wait_until(lambda: workflow.get_status("ev") is WorkflowStatus.RUNNING)
    staged = tmp_path / "signal.tmp"
    staged.write_text("go")
    staged.replace(signal_file)  # appears whole: the listener never reads a half-written file
    assert future.result(timeout=30) == "GO"
    assert (tmp_path / "ack").read_text() == "go"
    assert workflow.get_output("ev", task_id=poll_for_event.bind(FileListener).name) == "go"


def test_sleep_finishes_and_outputs_none(wf):
    assert workflow.run(workflow.sleep(0.05), workflow_id="nap") is None


def test_wait_for_event_refuses_a_non_listener(wf):
    with pytest.raises(TypeError, match="EventListener"):
        workflow.wait_for_event(object)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        workflow.sleep(-1)


SLEEPER = textwrap.dedent(
    """
    import sys
    from durableflow import Client, workflow
    client = Client(sys.argv[1])
    client.run(workflow.sleep(float(sys.argv[2])), workflow_id="sleeper")
    """
)


def test_sleep_keeps_its_wake_time_across_a_crash(storage_url):
    store = storage_url
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER, store, "1.5"])
    wake_id = wake_time.bind(0).name
    with Client(store) as client:
        wait_until(
            lambda: (
                client.list_all(WorkflowStatus.RUNNING)
                and client.store.has_output("sleeper", wake_id)
            )
        )
        wake_at = client.get_output("sleeper", task_id=wake_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert client.get_status("sleeper") is WorkflowStatus.RESUMABLE
        assert client.resume("sleeper") is None
        # The stored wake time was kept (not recomputed from the resume), and it has passed.
        assert client.get_output("sleeper", task_id=wake_id) == wake_at
        assert time.time() >= wake_at
        meta = client.get_metadata("sleeper", task_id=wake_id)
        assert meta["attempts"] == 1
    json.dumps(meta)
