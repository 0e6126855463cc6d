"""The worker's loop: scan, start, judge what ended, serve, shut down (:mod:`durableflow.worker`).

Its background prune is in :mod:`._pruning`; the actors' mailboxes are drained by
:class:`~durableflow.actors.draining.MailboxDrainer`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from durableflow.actors.draining import MailboxDrainer
from durableflow.client import Client
from durableflow.errors import (
    WorkflowCancellationError,
    WorkflowError,
    WorkflowIncompleteError,
    WorkflowNotFoundError,
    WorkflowNotResumableError,
    WorkflowStillActiveError,
)
from durableflow.model.status import WorkflowStatus
from durableflow.runtime.slots import SlotKeeper
from durableflow.runtime.workers import HEARTBEAT_TTL, WorkerHeartbeat
from durableflow.worker._pruning import PRUNE_EVERY, PRUNE_RATE, BackgroundPruner

if TYPE_CHECKING:
    from durableflow.runtime.retention import PruneResult

__all__ = ["Worker"]

log = logging.getLogger("durableflow.worker")

_MAX_BACKOFF = 300.0


class Worker:
    """Runs the waiting workflows and the schedules of one storage.

    Args:
        client: the Client whose storage and executor the worker uses (not closed by it).
        max_running_workflows: the most workflows RUNNING under all workers of the storage
            together (every worker must be given the same number); None: no shared limit.
        concurrency: the most workflows this worker runs at once.
        resume: also resume RESUMABLE workflows (not only PENDING ones).
        schedules: fire the storage's schedules.
        poll_interval: seconds between two scans of the storage.
        clock: the time used for schedules (``time.time``; tests inject their own).
        heartbeat_ttl: seconds the worker's heartbeat record lives without renewal (written
            every third of it while :meth:`serve` runs, or after :meth:`start_heartbeat`).
        prune_every: seconds of ``clock`` between two background prunes by the stored
            retention policy (0: never).
        prune_rate: deletes per second at most in a background prune.
        actors: drain the mailboxes of virtual actors (step 4).
        actor_threads: actors drained at once.
    """

    def __init__(
        self,
        client: Client,
        *,
        max_running_workflows: int | None = None,
        concurrency: int = 8,
        resume: bool = True,
        schedules: bool = True,
        poll_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        heartbeat_ttl: float = HEARTBEAT_TTL,
        prune_every: float = PRUNE_EVERY,
        prune_rate: float = PRUNE_RATE,
        actors: bool = True,
        actor_threads: int = 4,
    ) -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive int, got {concurrency!r}")
        self.client = client
        self.concurrency = concurrency
        self.resume = resume
        self.schedules = schedules
        self.poll_interval = poll_interval
        self.clock = clock
        self.slots = (
            SlotKeeper(client.storage, max_running_workflows, client.lease_ttl)
            if max_running_workflows is not None
            else None
        )
        self._lock = threading.Lock()
        self._running: dict[str, tuple[int | None, Future[Any]]] = {}
        self._backoff: dict[str, tuple[int, float]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.started: list[str] = []
        """Ids of every workflow this worker started, in order (for tests and logs)."""
        self.heartbeat = WorkerHeartbeat(client.storage, heartbeat_ttl)
        """This worker's heartbeat record (see :mod:`durableflow.runtime.workers`)."""
        self.pruner = BackgroundPruner(client, clock, prune_every, prune_rate)
        """Applies the storage's retention policy in the background (see :mod:`._pruning`)."""
        self.actor_drainer = (
            MailboxDrainer(client, actor_threads, should_stop=self._stop.is_set) if actors else None
        )
        """Drains the actors' mailboxes (step 4); None with ``actors=False``."""

    @property
    def stopping(self) -> bool:
        """True once :meth:`request_stop` was called."""
        return self._stop.is_set()

    @property
    def running(self) -> list[str]:
        """Ids of the workflows this worker runs now."""
        with self._lock:
            return list(self._running)

    # --- one scan ---------------------------------------------------------------------------
    def run_once(self) -> list[str]:
        """Fire due schedules and start what waits, as far as room allows; return ids started."""
        if self.schedules and not self._stop.is_set():
            try:
                fired = self.client.fire_schedules(self.clock())
                if fired:
                    log.info("schedules fired: %s", ", ".join(fired))
            except WorkflowError as err:
                log.warning("firing schedules failed, retrying at the next poll: %s", err)
        if not self._stop.is_set():
            self.pruner.maybe_start()
        self.drain_actors()
        started: list[str] = []
        if self._room() <= 0 or self._stop.is_set():
            return started
        if self.slots is not None and not self.slots.maybe_free():
            return started
        for workflow_id in self._candidates():
            if self._room() <= 0 or self._stop.is_set():
                break
            if self._start(workflow_id):
                started.append(workflow_id)
            elif self.slots is not None and not self._slot_maybe_free():
                break
        return started

    def _room(self) -> int:
        with self._lock:
            return self.concurrency - len(self._running)

    def _slot_maybe_free(self) -> bool:
        return self.slots is None or self.slots.maybe_free()

    def _candidates(self) -> list[str]:
        """Workflows waiting for a runner, oldest first (none this worker runs or delays)."""
        now = time.monotonic()
        with self._lock:
            skip = set(self._running) | {
                w for w, (_, until) in self._backoff.items() if until > now
            }
        return self.client.waiting_workflows(self.resume, frozenset(skip))

    def _start(self, workflow_id: str) -> bool:
        slot: int | None = None
        if self.slots is not None:
            slot = self.slots.acquire(workflow_id, functools.partial(self._slot_lost, workflow_id))
            if slot is None:
                return False
        try:
            future = self.client.resume_async(workflow_id, wait=False)
        except (WorkflowStillActiveError, WorkflowNotFoundError):
            self._free(slot)  # another worker was first, or it was deleted
            return False
        except WorkflowNotResumableError as err:
            self._free(slot)
            log.error("cannot run workflow %s here: %s", workflow_id, err)
            self._delay(workflow_id, _MAX_BACKOFF)
            return False
        except WorkflowError as err:
            self._free(slot)
            log.warning("cannot start workflow %s now: %s", workflow_id, err)
            self._delay(workflow_id)
            return False
        except Exception as err:  # e.g. a task function that no longer imports
            self._free(slot)
            log.error("cannot start workflow %s: %s: %s", workflow_id, type(err).__name__, err)
            self._delay(workflow_id, _MAX_BACKOFF)
            return False
        # A future already done here is a tiny run that finished at once, or (rarely) one that
        # another worker finished just before our claim: either way the callback frees the slot.
        with self._lock:
            self._running[workflow_id] = (slot, future)
            self.started.append(workflow_id)
        log.info(
            "started workflow %s%s", workflow_id, f" in slot {slot}" if slot is not None else ""
        )
        future.add_done_callback(functools.partial(self._finished, workflow_id, slot))
        return True

    def _free(self, slot: int | None) -> None:
        if slot is not None and self.slots is not None:
            self.slots.release(slot)

    def _delay(self, workflow_id: str, seconds: float | None = None) -> None:
        with self._lock:
            failures = self._backoff.get(workflow_id, (0, 0.0))[0] + 1
            wait = seconds if seconds is not None else min(_MAX_BACKOFF, 2.0**failures)
            self._backoff[workflow_id] = (failures, time.monotonic() + wait)

    def _slot_lost(self, workflow_id: str) -> None:
        self.client.stop(workflow_id)

    def _finished(self, workflow_id: str, slot: int | None, future: Future[Any]) -> None:
        try:
            self._free(slot)
            self._judge(workflow_id, future.exception())
        finally:
            with self._lock:  # last: an idle worker holds no slot and has its backoff decided
                self._running.pop(workflow_id, None)
            self._wake.set()

    def _judge(self, workflow_id: str, error: BaseException | None) -> None:
        if error is None:
            log.info("workflow %s SUCCESSFUL", workflow_id)
            with self._lock:
                self._backoff.pop(workflow_id, None)
        elif isinstance(error, WorkflowCancellationError):
            log.info("workflow %s CANCELED", workflow_id)
        elif isinstance(error, WorkflowIncompleteError):
            log.info("workflow %s stopped, left RESUMABLE", workflow_id)
        else:
            try:
                status = self.client.get_status(workflow_id)
            except WorkflowError:
                status = None
            log.warning(
                "workflow %s %s: %s", workflow_id, status.value if status else "stopped", error
            )
            if status is not WorkflowStatus.FAILED:
                self._delay(workflow_id)

    # --- virtual actors -----------------------------------------------------------------------
    def drain_actors(self) -> list[str]:
        """Start draining every marked actor not drained here now (step 4); their ids."""
        if self.actor_drainer is None or self._stop.is_set():
            return []
        return self.actor_drainer.start()

    def wait_actors(self, timeout: float | None = None) -> bool:
        """Wait until no actor is being drained here; False on timeout."""
        return self.actor_drainer is None or self.actor_drainer.wait(timeout)

    @property
    def actor_calls_applied(self) -> int:
        """Virtual actor calls this worker committed (for tests and logs)."""
        return 0 if self.actor_drainer is None else self.actor_drainer.applied

    # --- retention ------------------------------------------------------------------------------
    @property
    def prune_every(self) -> float:
        """Seconds of ``clock`` between two background prunes (0: never)."""
        return self.pruner.every

    @property
    def prune_rate(self) -> float:
        """Deletes per second at most in a background prune."""
        return self.pruner.rate

    def prune_once(self, now: float | None = None) -> PruneResult | None:
        """Apply the stored retention policy once at ``prune_rate``; never raises.

        Args:
            now: the time ages are measured at (default: ``clock``).

        Returns:
            What was deleted, or None when there is no policy or the prune failed (logged).
        """
        return self.pruner.prune_once(now)

    def wait_prune(self, timeout: float | None = None) -> bool:
        """Wait for the background prune running now (if any); False on timeout."""
        return self.pruner.wait(timeout)

    # --- serving ------------------------------------------------------------------------------
    def start_heartbeat(self) -> None:
        """Write this worker's heartbeat and keep it fresh until :meth:`shutdown` (idempotent)."""
        self.heartbeat.start()
        mine = self.heartbeat.owner
        others = [w for w in self.client.reader.live_workers() if w["owner"] != mine]
        if others:
            log.info(
                "other workers on this storage: %s",
                ", ".join(f"{w['host']} pid {w['pid']}" for w in others),
            )

    def serve(self) -> None:
        """Scan every ``poll_interval`` seconds (and when a run ends) until :meth:`request_stop`."""
        log.info(
            "worker serving %s (concurrency %d%s)",
            self.client.storage.url,
            self.concurrency,
            f", max_running_workflows {self.slots.limit}" if self.slots else "",
        )
        try:
            self.start_heartbeat()
        except WorkflowError as err:  # the storage is down: the scans below keep trying
            log.warning("could not list the workers of this storage: %s", err)
        while not self._stop.is_set():
            try:
                self.run_once()
            except WorkflowError as err:  # the storage is down: keep trying
                log.warning("scan failed, retrying: %s", err)
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def request_stop(self) -> None:
        """Make :meth:`serve` return; start nothing more."""
        self._stop.set()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until this worker runs nothing; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                futures = [future for _, future in self._running.values()]
            if not futures:
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            concurrent.futures.wait(futures, timeout=remaining)

    def shutdown(self, grace: float = 10.0) -> list[str]:
        """Stop: give running workflows ``grace`` seconds, then leave the rest RESUMABLE.

        Returns:
            The ids of the workflows stopped (left RESUMABLE).
        """
        self.request_stop()
        self.wait_idle(grace)
        stopped = self.running
        for workflow_id in stopped:
            log.info("stopping workflow %s: left RESUMABLE", workflow_id)
            self.client.stop(workflow_id)
        self.wait_idle(30.0)
        if self.actor_drainer is not None:
            self.actor_drainer.close(grace)
        if self.slots is not None:
            self.slots.close()
        self.heartbeat.stop()
        return stopped
