"""How :class:`~durableflow.storage.filesystem.FileStorage` writes a file durably.

The steps of one write (1-4) and the durability scopes are told in the docstring of
:mod:`durableflow.storage.filesystem`; this module holds the machinery behind them, shared by
every kind of write there: the temporary file (steps 1-2), the directory fsync (step 4) now, at
the end of a ``batch`` or never, and the cache of the directories known to exist, whose new
entries are fsynced into their parents once.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from durableflow.storage._filelocks import DIRECTORY_SYNCS

__all__ = ["DurableWrites"]


class DurableWrites:
    """The write machinery of a directory storage, per handle (a base class of FileStorage).

    Args:
        root: the storage's directory, which exists.
        fsync: False skips steps 2 and 4 everywhere.
    """

    def __init__(self, root: Path, fsync: bool) -> None:
        self._root = root
        self._fsync = fsync
        self._known_dirs: set[Path] = {root}
        self._unsynced: set[Path] = set()
        """Directories made in a volatile scope whose entries are not fsynced yet."""
        self._dirs_lock = threading.Lock()
        self._scope = threading.local()
        """Per thread: ``mode`` ("batch" or "volatile") and, in a batch, ``dirs`` to fsync."""

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Fsync each directory written in the block once, when it exits (see filesystem)."""
        if not self._fsync or getattr(self._scope, "mode", None):
            yield  # nothing to sync, or an outer scope decides
            return
        self._scope.mode = "batch"
        self._scope.dirs = set()
        try:
            yield
            dirs = self._scope.dirs
        finally:
            self._scope.mode = None
            self._scope.dirs = None
        # Only after a normal exit: a failed block's writes are like a crash in its middle.
        # The fsyncs run side by side (one journal commit); the block returns after all.
        DIRECTORY_SYNCS.sync_all(sorted(dirs, key=lambda d: len(d.parts), reverse=True))

    @contextlib.contextmanager
    def volatile(self) -> Iterator[None]:
        """Skip the fsyncs of the writes in the block (see filesystem)."""
        if not self._fsync or getattr(self._scope, "mode", None):
            yield
            return
        self._scope.mode = "volatile"
        try:
            yield
        finally:
            self._scope.mode = None

    def _sync_file(self) -> bool:
        """Whether step 2 (fsync the temporary file) is done for a write now."""
        return self._fsync and getattr(self._scope, "mode", None) != "volatile"

    def _sync_dir(self, directory: Path) -> None:
        """Step 4 for ``directory``: now, at the end of the batch, or not at all."""
        if not self._fsync:
            return
        mode = getattr(self._scope, "mode", None)
        if mode is None:
            self._fsync_dir(directory)
        elif mode == "batch":
            self._scope.dirs.add(directory)

    def _create_empty(self, target: Path) -> bool:
        """Create ``target`` as an empty file; False if it exists (no temporary file needed)."""
        self._ensure_dir(target.parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            try:
                fd = os.open(target, flags, 0o644)
            except FileNotFoundError:  # the directory was removed since it was cached
                self._forget_lineage(target)
                self._ensure_dir(target.parent)
                fd = os.open(target, flags, 0o644)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def _ensure_dir(self, directory: Path) -> None:
        """Make ``directory`` exist, with its entry (and its parents') durable unless volatile.

        A directory this handle has not seen yet, created now or found on disk (another
        process may have made it without a sync, or died first), has its entry fsynced in its
        parent once, with the write (step 4). In a volatile scope that is put off until the
        next write below it that is not volatile.
        """
        lineage = (directory, *directory.parents)
        if directory in self._known_dirs and self._unsynced.isdisjoint(lineage):
            return  # only a directory's own ancestors matter, not every unsynced one
        fresh = []  # directories on the path this handle has not seen, deepest first
        probe = directory
        while probe not in self._known_dirs:
            fresh.append(probe)
            probe = probe.parent
        for new_dir in reversed(fresh):
            with contextlib.suppress(FileExistsError):
                new_dir.mkdir()
        durable = self._sync_file()
        with self._dirs_lock:
            self._known_dirs.update(fresh)
            if not durable:
                if self._fsync:
                    self._unsynced.update(fresh)
                return
            pending = [d for d in lineage if d in self._unsynced]
            self._unsynced.difference_update(pending)
        for synced in {*fresh, *pending}:
            self._sync_dir(synced.parent)

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        DIRECTORY_SYNCS.sync(directory)

    def _write_temp(self, target: Path, data: bytes) -> Path:
        self._ensure_dir(target.parent)
        tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name[:40]}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            # Another handle (or process) removed the directory since it was cached: forget it
            # and its cached ancestors, create them again, and retry once.
            self._forget_lineage(tmp)
            self._ensure_dir(target.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self._sync_file():
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    def _forget_lineage(self, path: Path) -> None:
        """Forget the cached directories above ``path`` (the root stays): one was removed."""
        with self._dirs_lock:
            self._known_dirs = {
                d for d in self._known_dirs if d == self._root or not path.is_relative_to(d)
            }

    def _forget_below(self, directory: Path) -> None:
        """Forget ``directory`` and the cached directories under it (it is being removed)."""
        with self._dirs_lock:
            self._known_dirs = {d for d in self._known_dirs if not d.is_relative_to(directory)}
