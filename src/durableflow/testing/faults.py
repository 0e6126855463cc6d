"""A storage wrapper that fails on purpose, for crash-safety tests.

::

    storage = FaultyStorage(FileStorage(tmp_path), "put", nth=3, key="/outputs/", error=True)
    storage = FaultyStorage(inner, "create", key="/lease", before=kill_this_process)
    storage.inject("put", nth=2, after=kill_this_process)   # the write lands, then the crash
    storage.inject("list", hang=5.0)                         # blocks up to 5 s, then raises
    storage.heal()                                            # stop injecting; resume works

Operation kinds are ``get``, ``put``, ``create``, ``swap``, ``delete`` and ``list``. Each value of
``put_many`` counts as one ``put`` and each key removed by ``delete_prefix`` as one ``delete``
(the wrapper writes and deletes around a fault one by one, and in one call to the inner storage
where no fault fires). For ``list`` the prefix plays the part of the key.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from durableflow.errors import StorageUnavailableError
from durableflow.storage.base import Storage

__all__ = ["OPERATIONS", "Fault", "FaultyStorage", "kill_this_process"]

OPERATIONS = ("get", "put", "create", "swap", "delete", "list")

T = TypeVar("T")


def kill_this_process() -> None:
    """SIGKILL the calling process: no cleanup, no flush, like a power cut of one process."""
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Fault:
    """One injection rule; see :meth:`FaultyStorage.inject` for the fields.

    Attributes:
        seen: operations that matched ``op`` and ``key`` so far.
        fired: operations this rule acted on so far.
    """

    op: str
    nth: int = 1
    key: str | None = None
    times: int | None = 1
    error: bool | BaseException = False
    error_after: bool | BaseException = False
    hang: float | None = None
    before: Callable[[], object] | None = None
    after: Callable[[], object] | None = None
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def matches(self, op: str, key: str) -> bool:
        """True if an operation of kind ``op`` on ``key`` is one this rule counts."""
        return op == self.op and (self.key is None or self.key in key)

    def due(self) -> bool:
        """True if the operation just counted is one to act on."""
        if self.seen < self.nth:
            return False
        return self.times is None or self.seen < self.nth + self.times


class FaultyStorage(Storage):
    """Wraps a storage and injects faults into chosen operations.

    The constructor's arguments after ``inner`` are a shortcut for one :meth:`inject` call.
    ``url`` is the inner storage's URL, so a process that reopens it sees a healthy storage.

    Args:
        inner: the storage that does the real work.
        op: operation kind to inject into, or None to start with no fault.
        **fault: the other arguments of :meth:`inject`.
    """

    def __init__(self, inner: Storage, op: str | None = None, **fault: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._released = threading.Event()
        self._calls: Counter[str] = Counter()
        if op is not None:
            self.inject(op, **fault)
        elif fault:
            raise ValueError("fault arguments given without an operation kind")

    @property
    def inner(self) -> Storage:
        """The wrapped storage."""
        return self._inner

    @property
    def url(self) -> str:
        """The inner storage's URL."""
        return self._inner.url

    @property
    def faults(self) -> list[Fault]:
        """The rules still active, in injection order."""
        with self._lock:
            return list(self._faults)

    def calls(self) -> dict[str, int]:
        """How many operations of each kind were asked of this wrapper so far."""
        with self._lock:
            return {op: self._calls[op] for op in OPERATIONS}

    def inject(
        self,
        op: str,
        *,
        nth: int = 1,
        key: str | None = None,
        times: int | None = 1,
        error: bool | BaseException = False,
        error_after: bool | BaseException = False,
        hang: float | None = None,
        before: Callable[[], object] | None = None,
        after: Callable[[], object] | None = None,
    ) -> Fault:
        """Add a rule and return it.

        Args:
            op: operation kind: get, put, create, swap, delete or list.
            nth: act on the nth matching operation (1 = the first).
            key: count only operations whose key (or list prefix) contains this substring.
            times: act on this many matching operations from the nth on; None: all of them.
            error: raise instead of calling the inner storage: True for a
                ``StorageUnavailableError``, or the exception to raise.
            error_after: call the inner storage, then raise (a reply lost after the write).
            hang: block up to this many seconds (less if :meth:`heal` is called), then raise
                ``StorageUnavailableError``; the inner storage is not called.
            before: called just before the inner call, e.g. :func:`kill_this_process`.
            after: called just after the inner call returned.

        Several rules may count the same operation; the first due one (in injection order)
        acts on it.
        """
        if op not in OPERATIONS:
            raise ValueError(f"unknown operation kind {op!r}; one of {', '.join(OPERATIONS)}")
        if nth < 1 or (times is not None and times < 1):
            raise ValueError("nth and times must be at least 1")
        if not (error or error_after or hang is not None or before or after):
            raise ValueError("a fault needs error, error_after, hang, before or after")
        fault = Fault(op, nth, key, times, error, error_after, hang, before, after)
        with self._lock:
            self._faults.append(fault)
        return fault

    def heal(self) -> None:
        """Remove every rule and release operations hanging now."""
        with self._lock:
            self._faults.clear()
            released, self._released = self._released, threading.Event()
        released.set()

    # -- operations ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """Inner ``get``, unless a fault acts on it."""
        return self._call("get", key, lambda: self._inner.get(key))

    def put(self, key: str, data: bytes) -> None:
        """Inner ``put``, unless a fault acts on it."""
        self._call("put", key, lambda: self._inner.put(key, data))

    def create(self, key: str, data: bytes) -> bool:
        """Inner ``create``, unless a fault acts on it."""
        return self._call("create", key, lambda: self._inner.create(key, data))

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        """Inner ``swap``, unless a fault acts on it."""
        return self._call("swap", key, lambda: self._inner.swap(key, expected, data))

    def delete(self, key: str) -> None:
        """Inner ``delete``, unless a fault acts on it."""
        self._call("delete", key, lambda: self._inner.delete(key))

    def list(self, prefix: str) -> list[str]:
        """Inner ``list``, unless a fault acts on it."""
        return self._call("list", prefix, lambda: self._inner.list(prefix))

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Inner ``put_many`` for runs of values no fault acts on; faulted values one by one."""
        batch: list[tuple[str, bytes]] = []
        for key, data in items:
            fault = self._count("put", key)
            if fault is None:
                batch.append((key, data))
                continue
            if batch:
                self._inner.put_many(batch)
                batch = []
            self._act(fault, "put", key, functools.partial(self._inner.put, key, data))
        if batch:
            self._inner.put_many(batch)

    def delete_prefix(self, prefix: str) -> None:
        """Inner ``delete_prefix`` if no fault acts on a key under it, else key by key."""
        keys = self._inner.list(prefix)
        done = 0  # keys[:done] are deleted one by one
        for index, key in enumerate(keys):
            fault = self._count("delete", key)
            if fault is None:
                continue
            for earlier in keys[done:index]:
                self._inner.delete(earlier)
            done = index + 1
            self._act(fault, "delete", key, functools.partial(self._inner.delete, key))
        if done == 0:
            self._inner.delete_prefix(prefix)
        for key in keys[done:] if done else ():
            self._inner.delete(key)

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """The inner storage's ``batch`` scope."""
        return self._inner.batch()

    def volatile(self) -> contextlib.AbstractContextManager[None]:
        """The inner storage's ``volatile`` scope."""
        return self._inner.volatile()

    @property
    def ordered(self) -> bool:
        """The inner storage's ``ordered``."""
        return self._inner.ordered

    def sync(self) -> None:
        """The inner storage's ``sync`` (not a counted operation: it writes no key)."""
        self._inner.sync()

    def close(self) -> None:
        """Release hanging operations and close the inner storage."""
        self.heal()
        self._inner.close()

    def __repr__(self) -> str:
        return f"FaultyStorage({self._inner!r})"

    # -- machinery ----------------------------------------------------------------------------

    def _call(self, op: str, key: str, call: Callable[[], T]) -> T:
        fault = self._count(op, key)
        if fault is None:
            return call()
        return self._act(fault, op, key, call)

    def _count(self, op: str, key: str) -> Fault | None:
        """Count one operation against every rule; return the rule that acts on it, if any."""
        with self._lock:
            self._calls[op] += 1
            acting = None
            for fault in self._faults:
                if not fault.matches(op, key):
                    continue
                fault.seen += 1
                if acting is None and fault.due():
                    fault.fired += 1
                    acting = fault
            return acting

    def _act(self, fault: Fault, op: str, key: str, call: Callable[[], T]) -> T:
        number = fault.seen
        if fault.before is not None:
            fault.before()
        if fault.error:
            raise _exception(fault.error, f"injected fault: {op} {key!r} (match #{number})", key)
        if fault.hang is not None:
            with self._lock:
                released = self._released
            released.wait(fault.hang)
            raise StorageUnavailableError(
                f"injected hang: {op} {key!r} gave no answer (match #{number})", key=key
            )
        result = call()
        if fault.after is not None:
            fault.after()
        if fault.error_after:
            message = f"injected fault after the {op} of {key!r} was done (match #{number})"
            raise _exception(fault.error_after, message, key)
        return result


def _exception(spec: bool | BaseException, message: str, key: str) -> BaseException:
    if isinstance(spec, BaseException):
        return spec
    return StorageUnavailableError(message, key=key)
