"""Group commit for :class:`~durableflow.storage.sqlite.SQLiteStorage`: one fsync for many writes.

Every commit runs with ``synchronous=NORMAL``: it reaches the write-ahead log (visible to every
connection, and kept when the process is killed) without an fsync. A write is made durable
afterwards by a *sync*: an fsync of the log file, which makes every commit written to it before
durable, by any thread or process (the kernel flushes the file, whoever wrote it). SQLite's log
is append-only and checksummed frame by frame, so a power cut keeps a prefix of the commits:
what a sync covers survives, and what it does not is lost together with everything committed
after it (the storage is *ordered*). What SQLite syncs by itself with ``NORMAL`` completes the
picture: the log before and the database after each checkpoint (so commits moved out of the log
are durable in the database), and the log's header (and its directory entry, for a new log)
when the log is started or restarted. When there is no log file at all (the last connection
closed it after a complete, synced checkpoint), a sync is one commit with ``synchronous=FULL``.

Threads of one process that write to one database file share a :class:`GroupSync`:

1. a write takes the process's write lock (so threads never meet in SQLite's busy handler,
   which sleeps for milliseconds), commits, and takes a *generation*, the count of commits of
   this process so far;
2. to be durable, it waits until a sync that began after that commit has finished: if none is
   running it runs one itself, covering every commit made before it began; if one is running
   it waits for it to end and checks again. A sync holds no lock: writers go on committing
   while it runs, and those that committed meanwhile share the next one (with 8 writers one
   fsync covers up to 8 commits).

A sync that fails (the disk is full, the database went away) raises in the thread that ran it
and in no other: the others run their own on the next pass. What a killed process leaves is
committed (visible, and kept unless the machine loses power); the next sync of any process
makes it durable too.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable

__all__ = ["GroupSync", "group_for"]


class GroupSync:
    """The write lock and sync generations of one database file in this process."""

    def __init__(self) -> None:
        self.write_lock = threading.RLock()
        self._cond = threading.Condition(threading.Lock())
        self._written = 0  # generations handed out (commits this process made)
        self._synced = 0  # every generation up to this one is durable
        self._syncing = False
        self.syncs = 0  # syncs run, for tests and benchmarks

    def wrote(self) -> int:
        """Count one commit (call under ``write_lock``, after it committed); its generation."""
        with self._cond:
            self._written += 1
            return self._written

    def sync_through(self, generation: int, run_sync: Callable[[], None]) -> None:
        """Return once every commit up to ``generation`` is durable (steps 2 of the module).

        Args:
            generation: what :meth:`wrote` returned for the caller's last commit.
            run_sync: one fsync of the log; called by one thread at a time, without
                ``write_lock`` (writers keep committing while it runs).
        """
        with self._cond:
            while self._synced < generation:
                if not self._syncing:
                    self._syncing = True
                    target = self._written
                    break
                self._cond.wait()
            else:
                return
        done = False
        try:
            run_sync()  # writers go on committing meanwhile; the next sync covers them
            done = True
        finally:
            with self._cond:
                self._syncing = False
                if done:
                    self._synced = max(self._synced, target)
                    self.syncs += 1
                self._cond.notify_all()

    def sync_now(self, run_sync: Callable[[], None]) -> None:
        """A sync that begins after this call: also covers commits of other processes."""
        self.sync_through(self.wrote(), run_sync)


_GROUPS: weakref.WeakValueDictionary[tuple[str, int], GroupSync] = weakref.WeakValueDictionary()
_GROUPS_LOCK = threading.Lock()


def group_for(path: str) -> GroupSync:
    """The GroupSync of the database at ``path`` (resolved) in this process."""
    key = (os.path.realpath(path), os.getpid())
    with _GROUPS_LOCK:
        group = _GROUPS.get(key)
        if group is None:
            group = GroupSync()
            _GROUPS[key] = group
        return group


def _forget_after_fork() -> None:  # pragma: no cover - runs in forked children
    global _GROUPS_LOCK
    _GROUPS_LOCK = threading.Lock()
    _GROUPS.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
