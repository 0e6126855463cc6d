"""File storage's shared parts: the per-key lock and group commit of directory fsyncs.

What the threads and processes writing one
:class:`~durableflow.storage.filesystem.FileStorage` share: the lock of a key that ``swap`` and
``delete`` hold, and the fsyncs of a directory that writes finishing together share.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["DIRECTORY_SYNCS", "DirectorySyncs", "key_lock"]

# lockf locks belong to the process: threads of one process do not exclude each other with
# them, and closing any descriptor of the lock file drops the process's lock. Threads (of every
# FileStorage in the process) therefore also take one of these locks, chosen by lock file.
_THREAD_LOCKS = tuple(threading.Lock() for _ in range(64))


@contextlib.contextmanager
def key_lock(
    root: Path,
    key: str,
    error: Callable[[OSError, str], Exception],
    *,
    remove: bool = False,
) -> Iterator[None]:
    """Hold the lock of ``key`` in the storage at ``root`` against every thread and process.

    The lock is a ``lockf`` lock on ``.locks/<hash of key>`` (honoured over NFSv4) and, for the
    threads of this process, which ``lockf`` does not exclude from each other, a thread lock
    chosen by lock file.

    With ``remove`` (a delete), the lock file is unlinked before the lock is released, so
    deleted keys leave no lock files behind. A waiter that then gets the lock of the unlinked
    file sees that the path now names another file (or none) and locks again.

    Args:
        root: the storage's directory.
        key: the key to lock.
        error: turns an OSError of opening the lock file into the exception to raise.
        remove: unlink the lock file when done.
    """
    lock_dir = root / ".locks"
    lock_path = lock_dir / hashlib.sha256(key.encode()).hexdigest()[:32]
    thread_lock = _THREAD_LOCKS[hash(lock_path) % len(_THREAD_LOCKS)]
    with thread_lock:
        fd = _lock_file(key, lock_dir, lock_path, error)
        try:
            yield
        finally:
            if remove:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock_path)
            os.close(fd)  # closing releases the lock


def _lock_file(
    key: str, lock_dir: Path, lock_path: Path, error: Callable[[OSError, str], Exception]
) -> int:
    """Open and lock the current lock file of ``key``; its descriptor."""
    while True:
        try:
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the first lock of the storage: make the directory
                lock_dir.mkdir(exist_ok=True)
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise error(err, key) from err
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            current: int | None = os.stat(lock_path).st_ino
        except FileNotFoundError:
            current = None  # a delete unlinked it while we waited
        except BaseException:
            os.close(fd)
            raise
        if current == os.fstat(fd).st_ino:
            return fd
        os.close(fd)


class _SyncState:
    __slots__ = ("asked", "done", "running")

    def __init__(self) -> None:
        self.asked = 0
        self.done = 0
        self.running = False


class DirectorySyncs:
    """Group commit of directory fsyncs: threads that need one directory synced share fsyncs.

    A thread asks once its change (rename, link, unlink) is made, and takes a ticket. An fsync
    covers the tickets handed out before it started; one already running may have started
    before the change, so the thread waits for it to end, then either finds its ticket covered
    by a later one or runs one for every ticket handed out so far. Every caller still returns
    only after an fsync that started after its change: the same guarantee as its own fsync,
    with one fsync for the tasks that finish together instead of one each.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._states: dict[Path, _SyncState] = {}

    def sync(self, directory: Path) -> None:
        """Return once an fsync of ``directory`` that started after this call has ended."""
        with self._cond:
            state = self._states.get(directory)
            if state is None:
                state = self._states[directory] = _SyncState()
            state.asked += 1
            ticket = state.asked
            while state.running:
                self._cond.wait()
            if state.done >= ticket:
                return
            state.running = True
            covered = state.asked
        synced = False
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            synced = True
        finally:
            with self._cond:
                state.running = False
                if synced:
                    state.done = covered
                    if state.done >= state.asked and self._states.get(directory) is state:
                        del self._states[directory]  # waiters keep their reference
                self._cond.notify_all()

    def sync_all(self, directories: Iterable[Path]) -> None:
        """:meth:`sync` each directory, the fsyncs running at the same time.

        Returns once every one has returned (the first error is raised then). Concurrent
        fsyncs of a journaling file system join one journal commit: ext4 commits the changes
        of all the directories once, where fsyncs one after another pay a commit, then a
        device cache flush each. Each directory still gets an fsync that started after this
        call, so what the block wrote is as durable as with one fsync after another.
        """
        todo = list(directories)
        if len(todo) <= 1:
            for directory in todo:
                self.sync(directory)
            return
        futures = [_pool().submit(self.sync, directory) for directory in todo[1:]]
        error: BaseException | None = None
        try:
            self.sync(todo[0])
        except BaseException as err:
            error = err
        for future in futures:
            try:
                future.result()
            except BaseException as err:
                error = error or err
        if error is not None:
            raise error


_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads that run directory fsyncs side by side; a forked child makes its own."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(8, thread_name_prefix="durableflow-fsync"))
        return _POOL[1]


DIRECTORY_SYNCS = DirectorySyncs()
"""The one group-commit point of the process (every FileStorage shares it)."""
