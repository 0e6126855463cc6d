"""The callers' side of an actor's calls: futures, the driver thread, waiting for outcomes.

:class:`ActorCalls` is the base of :class:`~durableflow.actors.runtime.ActorRuntime`: it keeps
this process's pending calls (a future per call number) and resolves them as their outcomes are
committed, by a drain of this process (Drain 5 of :mod:`.runtime`) or by another writer (read
back from ``done/<seq>``). A ``run`` drains in the caller's thread when it can; ``run_async``
hands the drain to a driver thread (:mod:`.drivers`), which also waits for another process's
writer, claiming the lease at each poll.
"""

from __future__ import annotations

import abc
import concurrent.futures
import logging
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from durableflow.actors import drivers
from durableflow.actors.errors import ActorCallError, ActorNotFoundError
from durableflow.actors.reading import CommittedState
from durableflow.actors.store import ActorStore, Outcome
from durableflow.errors import StorageError

__all__ = ["ActorCalls"]

log = logging.getLogger("durableflow.actors")

_POLL_MIN = 0.001
_POLL_MAX = 0.05
_STORAGE_RETRIES = 5


_readers: concurrent.futures.ThreadPoolExecutor | None = None
_readers_lock = threading.Lock()


def _reader_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _readers
    with _readers_lock:
        if _readers is None:
            _readers = concurrent.futures.ThreadPoolExecutor(
                max_workers=8, thread_name_prefix="durableflow-actor-read"
            )
        return _readers


class ActorCalls(CommittedState, abc.ABC):
    """This process's pending calls of one actor and the threads that see them through.

    Args:
        store: the actor store.
        actor_id: the actor.
        actor_class: the :class:`~durableflow.actors.api.ActorClass` whose code runs calls.
    """

    def __init__(self, store: ActorStore, actor_id: str, actor_class: Any) -> None:
        super().__init__(store, actor_id, actor_class)
        self._pending: dict[int, Future[Any]] = {}
        self._driving = False
        self._drain_lock = threading.Lock()
        self._changed = threading.Condition()
        self._epoch = 0
        """Counts the ends of this process's drains and resolved calls (waiters wake on it)."""

    def read_async(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        """A readonly call on a reader thread (:meth:`read`); a future of its result."""
        return _reader_pool().submit(self.read, method, args, kwargs)

    def ready(self) -> Any:
        """A future already resolved to True (Ray 1.x's ``ray.get(actor.ready())``)."""
        future: Future[bool] = Future()
        future.set_result(True)
        return future

    @abc.abstractmethod
    def submit(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], mode: str) -> int:
        """Store a call (Submit 1-2 of :mod:`.runtime`) and return its number."""

    @abc.abstractmethod
    def drain(self, should_stop: Callable[[], bool] | None = None) -> int:
        """Apply every pending call if this process can be the writer (Drain 1-7)."""

    def call_async(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        """Submit a mutating call and return a future of its result (the driver drains)."""
        return self.track(self.submit(method, args, kwargs, "run"))

    def track(self, seq: int) -> Future[Any]:
        """A future of the result of stored call ``seq``; the driver sees it through."""
        future: Future[Any] = Future()
        with self._lock:
            future = self._pending.setdefault(seq, future)
            start = not self._driving
            self._driving = True
        if start:
            drivers.submit(self._drive)
        return future

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Submit a mutating call and drain in this thread until its outcome is committed.

        The caller's thread is the writer when it can be (no hand-over to the driver thread);
        while another writer holds the actor it waits for the outcome, claiming at each poll.
        """
        seq = self.submit(method, args, kwargs, "run")
        future: Future[Any] = Future()
        with self._lock:
            self._pending[seq] = future
        delay = _POLL_MIN
        try:
            while not future.done():
                epoch = self._epoch
                if self._drain_lock.locked():  # a thread here drains: it will tell us
                    self._wait_for_change(epoch, _POLL_MAX)
                    continue
                progressed = self.drain() > 0
                if future.done():
                    break
                if progressed or self._resolve_committed():
                    delay = _POLL_MIN
                    continue
                self._wait_for_change(epoch, delay)  # a drain here ends, or another's poll
                delay = min(delay * 2, _POLL_MAX)
        except BaseException:
            with self._lock:
                self._pending.pop(seq, None)
            raise
        finally:
            self._hand_over()
        return future.result()

    def _wait_for_change(self, epoch: int, timeout: float) -> None:
        """Sleep up to ``timeout`` unless a drain of this process ended since ``epoch``."""
        with self._changed:
            if self._epoch == epoch:
                self._changed.wait(timeout)

    def _notify_change(self) -> None:
        with self._changed:
            self._epoch += 1
            self._changed.notify_all()

    def _hand_over(self) -> None:
        """Start the driver for calls of other threads still pending, if none runs."""
        with self._lock:
            start = bool(self._pending) and not self._driving
            self._driving = self._driving or start
        if start:
            drivers.submit(self._drive)

    # --- the driver: drain, or wait for another writer ----------------------------------------
    def _drive(self) -> None:
        delay = _POLL_MIN
        failures = 0
        idle = 0
        while True:
            with self._lock:
                if not self._pending:
                    self._driving = False
                    return
            epoch = self._epoch
            try:
                progressed = self.drain() > 0
                progressed = self._resolve_committed() or progressed
                failures = 0
            except (StorageError, ActorNotFoundError) as err:
                failures += 1
                if isinstance(err, ActorNotFoundError) or failures >= _STORAGE_RETRIES:
                    self._fail_pending(err)
                    continue
                log.warning("actor %s: storage error, retrying: %s", self.actor_id, err)
                progressed = False
            except Exception as err:  # a bug or an unloadable value: the callers must hear it
                log.exception("actor %s: driver failed", self.actor_id)
                self._fail_pending(err)
                continue
            if progressed:
                delay, idle = _POLL_MIN, 0
                continue
            idle += 1
            if idle % 50 == 0 and self.store.read_record(self.actor_id) is None:
                self._fail_pending(self._not_found())
                continue
            self._wait_for_change(epoch, delay)
            delay = min(delay * 2, _POLL_MAX)

    def _fail_pending(self, err: BaseException) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(err)

    def _resolve_committed(self) -> bool:
        """Resolve this process's pending calls that another writer committed, in order."""
        with self._lock:
            waiting = sorted(self._pending)
        resolved = False
        for seq in waiting:
            outcome = self.store.read_outcome(self.actor_id, seq)
            if outcome is None:
                break
            self._resolve(outcome)
            resolved = True
        return resolved

    def _resolve(self, outcome: Outcome) -> None:
        with self._lock:
            future = self._pending.pop(outcome.seq, None)
        if future is None or future.done():
            return
        try:
            future.set_result(self.result_of(outcome))
        except BaseException as err:  # the call's error, or its result does not unpickle
            future.set_exception(err)
        self._notify_change()

    def result_of(self, outcome: Outcome) -> Any:
        """The result of a committed call; raises ActorCallError for a call that raised."""
        value = pickle.loads(outcome.value)
        if outcome.header.get("ok"):
            return value
        method = outcome.header.get("method", "?")
        raise ActorCallError(
            f"actor {self.actor_id!r}: call {outcome.seq} ({method}) raised "
            f"{type(value).__name__}: {value}",
            workflow_id=self.actor_id,
            task_id=f"call.{outcome.seq}",
            seq=outcome.seq,
            method=method,
        ) from value
