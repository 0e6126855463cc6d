"""MailboxDrainer: a worker's step 4, draining the mailboxes of actors with pending calls.

Each :meth:`MailboxDrainer.start` lists the marked mailboxes and drains every actor not being
drained here already, on a small pool of threads, by the call protocol
(:func:`~durableflow.actors.manage.drain_actor`: one writer per actor across every process, by
its lease). An actor that cannot be drained here (its class does not import, its environment
differs under ``env_policy="error"``, the storage failed) is retried with a growing delay
(2, 4, 8 ... up to 300 s).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from durableflow.actors.manage import drain_actor, marked_actors
from durableflow.errors import WorkflowError

if TYPE_CHECKING:
    from durableflow.client import Client

__all__ = ["MailboxDrainer"]

log = logging.getLogger("durableflow.worker")

_MAX_BACKOFF = 300.0


class MailboxDrainer:
    """Drains marked actors of one storage on ``threads`` threads.

    Args:
        client: the Client of the storage (calls and sub-workflows run on it).
        threads: actors drained at once.
        should_stop: asked between calls; True ends every drain after its current call.
    """

    def __init__(
        self, client: Client, threads: int = 4, *, should_stop: Callable[[], bool] | None = None
    ) -> None:
        self.client = client
        self._should_stop = should_stop
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, threads), thread_name_prefix="durableflow-actor-drain"
        )
        self._lock = threading.Lock()
        self._draining: set[str] = set()
        self._backoff: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self.applied = 0
        """Calls committed by this drainer."""

    def start(self) -> list[str]:
        """Start draining every marked actor not drained here now; their ids."""
        try:
            marked = marked_actors(self.client)
        except WorkflowError as err:
            log.warning("listing actor mailboxes failed, retrying at the next poll: %s", err)
            return []
        now = time.monotonic()
        with self._lock:
            todo = [
                actor_id
                for actor_id in marked
                if actor_id not in self._draining and self._backoff.get(actor_id, 0) <= now
            ]
            self._draining.update(todo)
        for actor_id in todo:
            self._pool.submit(self._drain, actor_id)
        return todo

    def _drain(self, actor_id: str) -> None:
        try:
            applied = drain_actor(self.client, actor_id, should_stop=self._should_stop)
            with self._lock:
                self.applied += applied
                self._backoff.pop(actor_id, None)
                self._failures.pop(actor_id, None)
            if applied:
                log.info("actor %s: applied %d call(s)", actor_id, applied)
        except Exception as err:  # the class does not load here, the environment differs...
            with self._lock:
                failures = self._failures.get(actor_id, 0) + 1
                self._failures[actor_id] = failures
                wait = min(_MAX_BACKOFF, 2.0**failures)
                self._backoff[actor_id] = time.monotonic() + wait
            log.error(
                "actor %s: cannot apply its calls here, retrying in %gs: %s: %s",
                actor_id,
                wait,
                type(err).__name__,
                err,
            )
        finally:
            with self._lock:
                self._draining.discard(actor_id)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no actor is being drained; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._draining:
                    return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.005)

    def close(self, grace: float) -> None:
        """Give running drains ``grace`` seconds, then stop the pool (without waiting)."""
        self.wait(grace)
        self._pool.shutdown(wait=False, cancel_futures=True)
