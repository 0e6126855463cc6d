"""A heartbeat: one daemon thread that calls a function at a fixed interval until closed.

The ownership keeper (:mod:`durableflow.runtime.ownership`) renews its records with one: a beat
every ``ttl / 3`` seconds, started with the first record held (and again if its thread died,
e.g. in a forked child), stopped by :meth:`Heartbeat.close`. What a beat does, and what a
failed one means, is the caller's; the thread only keeps time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Heartbeat"]


class Heartbeat:
    """Calls ``beat`` every ``interval`` seconds on a daemon thread named ``name``.

    Args:
        beat: the function to call; it must not raise (an exception ends the thread, which
            :meth:`start` starts again).
        interval: seconds between the end of one beat and the next.
        name: the thread's name.
    """

    def __init__(self, beat: Callable[[], None], interval: float, name: str) -> None:
        self._beat = beat
        self._interval = interval
        self._name = name
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        """Start the thread, unless it is running or the heartbeat is closed."""
        with self._lock:
            if not self._closed and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._closed:
                return
            self._beat()

    def close(self) -> None:
        """Stop the thread (at once if it is waiting; after its beat if one is running)."""
        self._closed = True
        self._wake.set()
