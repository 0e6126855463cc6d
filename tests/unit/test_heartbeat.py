"""The heartbeat thread the ownership keeper renews its records with."""

from __future__ import annotations

import threading

import pytest

from durableflow.runtime.heartbeat import Heartbeat
from helpers import wait_until


def test_it_beats_repeatedly_and_close_stops_it() -> None:
    beats: list[int] = []
    heart = Heartbeat(lambda: beats.append(1), 0.01, "test-heartbeat")
    heart.start()
    heart.start()  # a running heartbeat is not started twice
    assert [t.name for t in threading.enumerate()].count("test-heartbeat") == 1
    wait_until(lambda: len(beats) >= 3)
    heart.close()
    wait_until(lambda: "test-heartbeat" not in [t.name for t in threading.enumerate()])
    after = len(beats)
    heart.start()  # closed: never starts again
    assert "test-heartbeat" not in [t.name for t in threading.enumerate()]
    assert len(beats) == after


def test_close_wakes_a_waiting_thread_at_once() -> None:
    heart = Heartbeat(lambda: None, 3600.0, "test-heartbeat-long")
    heart.start()
    heart.close()  # would otherwise sleep an hour before it saw the close
    wait_until(lambda: "test-heartbeat-long" not in [t.name for t in threading.enumerate()])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_thread_that_died_is_started_again() -> None:
    calls: list[int] = []

    def beat() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the first beat ends the thread")

    heart = Heartbeat(beat, 0.01, "test-heartbeat-restart")
    heart.start()
    wait_until(lambda: calls and "test-heartbeat-restart" not in _names())
    heart.start()
    wait_until(lambda: len(calls) >= 2)
    heart.close()


def _names() -> list[str]:
    return [t.name for t in threading.enumerate()]
