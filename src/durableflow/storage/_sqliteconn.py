"""The connections of :class:`~durableflow.storage.sqlite.SQLiteStorage`, one per thread.

Each thread gets its own connection (in autocommit mode, WAL journal, ``synchronous`` FULL, or
NORMAL with ``fsync=false``); a forked child opens its own instead of sharing its parent's.
Every connection is kept with its thread so that ``close`` reaches them all and the connections
of finished threads are closed when the next one opens. A connection is only ever closed when
no statement can be running on it (its thread is the caller, or has ended): closing a
connection while another thread runs a statement on it crashes the interpreter (CPython's
sqlite3 objects are not safe for that), so ``close`` leaves a live thread's connection to that
thread, which closes it at its next call (and gets ``StorageUnavailableError``).

Here too: the explicit write transaction (``BEGIN IMMEDIATE``), the relaxed ``synchronous`` of
the durability scopes, and the translation of SQLite's errors into durableflow's.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from durableflow.errors import StorageError, StorageUnavailableError, StorageURLError
from durableflow.storage._backend import storage_error, translate_errors
from durableflow.storage._sqlitesync import GroupSync, group_for

__all__ = ["SQLiteConnections"]

_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL exists only from Python 3.11


def _is_full(err: sqlite3.Error) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF == _SQLITE_FULL
    return "full" in str(err).lower()


class SQLiteConnections:
    """The per-thread connections to one database file (a base class of SQLiteStorage).

    Args:
        path: the database file.
        fsync: True for ``synchronous=FULL``, False for ``synchronous=NORMAL``.
        busy_ms: milliseconds a writer waits for another writer's lock before failing.
    """

    def __init__(self, path: Path, fsync: bool, busy_ms: int) -> None:
        self._path = path
        self._fsync = fsync
        self._busy_ms = busy_ms
        self._local = threading.local()
        self._lock = threading.Lock()
        # Every open connection with its thread, so close() reaches them all and connections
        # of finished threads are closed when the next one opens.
        self._connections: list[tuple[weakref.ref[threading.Thread], int, sqlite3.Connection]] = []
        self._closed = False
        self._groups: dict[int, GroupSync] = {}

    @property
    def url(self) -> str:
        """``sqlite:///path``, with ``?fsync=false`` when commits are not synced."""
        return f"sqlite://{quote(str(self._path))}" + ("" if self._fsync else "?fsync=false")

    def _group(self) -> GroupSync:
        """This process's write lock and sync generations for the file (see ``_sqlitesync``)."""
        group = self._groups.get(os.getpid())
        if group is None:
            group = group_for(str(self._path))
            self._groups = {os.getpid(): group}
        return group

    @contextmanager
    def _scope(self, kind: str) -> Iterator[bool]:
        """A durability scope on this thread; yields True for the outermost one (it decides)."""
        if getattr(self._local, "scope", None) is not None:
            yield False
            return
        self._local.scope = kind
        try:
            yield True
        finally:
            self._local.scope = None

    @contextmanager
    def _writing(self, action: str, key: str | None) -> Iterator[sqlite3.Connection]:
        """One write: under the process's write lock, then made durable as the scope says.

        Outside any scope the write is a transaction of its own, durable on return (a group
        sync); in ``volatile()`` it is not synced; in ``batch()`` it joins the block's one
        transaction (:meth:`_end_batch` commits it and the block's end syncs it).
        """
        group = self._group()
        scope = getattr(self._local, "scope", None)
        if scope == "batch":
            if not getattr(self._local, "tx", False):
                self._begin_batch(group)
            with self._errors(action, key):
                yield self._local.tx_connection
            return
        with self._errors(action, key), group.write_lock:
            connection = self._connection()
            yield connection
            generation = group.wrote()
        if scope is None:
            self._sync_through(generation)

    def _begin_batch(self, group: GroupSync) -> None:
        """A batch's first write: take the write lock and open its transaction, until its end.

        One commit for the block instead of one per write (a commit costs 50-300 us here,
        most of a write's time); other threads' writes wait for the block, readers do not.
        """
        group.write_lock.acquire()
        try:
            connection = self._connection()
            with self._errors("write", None):
                # IMMEDIATE takes SQLite's write lock at once, so the transaction never has
                # to upgrade a read lock (which fails with SQLITE_BUSY instead of waiting).
                connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            group.write_lock.release()
            raise
        self._local.tx = True
        self._local.tx_connection = connection

    def _end_batch(self) -> int:
        """Commit the block's transaction and release the write lock; its generation, or 0.

        Also after a block that raised: its writes stay, as they would have without the block
        (each protocol step is safe to be the last); only the sync is skipped. If the commit
        fails, nothing of the block is stored and the error is raised, as for one failed write.
        """
        if not getattr(self._local, "tx", False):
            return 0
        connection: sqlite3.Connection = self._local.tx_connection
        group = self._group()
        self._local.tx = False
        self._local.tx_connection = None
        try:
            with self._errors("write", None):
                if connection.in_transaction:  # a failed statement may have ended it
                    try:
                        connection.execute("COMMIT")
                    except sqlite3.Error:
                        if connection.in_transaction:
                            connection.execute("ROLLBACK")
                        raise
            return group.wrote()
        finally:
            group.write_lock.release()

    def _sync_through(self, generation: int) -> None:
        if self._fsync:
            with self._errors("sync", None):
                self._group().sync_through(generation, self._sync_log)

    def _sync_log(self) -> None:
        """Fsync the write-ahead log (see ``_sqlitesync``); a FULL commit when there is none."""
        try:
            # SQLite keeps the log beside the database file a symlink points to.
            fd = os.open(f"{os.path.realpath(self._path)}-wal", os.O_RDONLY)
        except FileNotFoundError:
            with self._group().write_lock:
                self._full_commit()
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _full_commit(self) -> None:
        """One commit with ``synchronous=FULL``: fsyncs the log and what it holds."""
        connection = self._connection()
        connection.execute("PRAGMA synchronous = FULL")
        try:
            connection.execute(
                "INSERT INTO sync_marker (id, n) VALUES (1, 1) "
                "ON CONFLICT (id) DO UPDATE SET n = n + 1"
            )
        finally:
            connection.execute("PRAGMA synchronous = NORMAL")

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            self._close_own()  # left open by close() while this thread might have used it
            raise StorageUnavailableError(f"sqlite storage {self.url} is closed")
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        # A forked child must not share its parent's connection: open its own.
        if connection is not None and self._local.pid == os.getpid():
            return connection
        connection = self._open()
        self._local.connection = connection
        self._local.pid = os.getpid()
        return connection

    def _open(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self._path,
                timeout=self._busy_ms / 1000,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # close() may run in another thread
            )
            connection.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageURLError(f"cannot put {str(self._path)!r} in WAL mode (got {mode})")
            # Always NORMAL: durability comes from the group syncs (module ``_sqlitesync``).
            connection.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as err:
            raise self._translate(err, "open", None) from err
        me = threading.current_thread()
        with self._lock:
            alive = []
            for thread_ref, pid, other in self._connections:
                thread = thread_ref()
                if thread is None or not thread.is_alive() or pid != os.getpid():
                    _close_quietly(other)
                else:
                    alive.append((thread_ref, pid, other))
            alive.append((weakref.ref(me), os.getpid(), connection))
            self._connections = alive
        return connection

    def _drop_connections(self) -> None:
        """Close this thread's connection and those of ended threads; keep the others.

        A connection of another live thread may be running a statement right now: it stays
        listed, and its thread closes it at its next call (:meth:`_close_own`). A forked
        parent's connections are never touched.
        """
        me = threading.current_thread()
        closing = []
        with self._lock:
            kept = []
            for thread_ref, pid, connection in self._connections:
                thread = thread_ref()
                if pid != os.getpid():
                    continue
                if thread is None or thread is me or not thread.is_alive():
                    closing.append(connection)
                else:
                    kept.append((thread_ref, pid, connection))
            self._connections = kept
        for connection in closing:
            _close_quietly(connection)

    def _close_own(self) -> None:
        """Close the calling thread's connection if it is still open (after ``close``)."""
        me = threading.current_thread()
        with self._lock:
            mine = [entry for entry in self._connections if entry[0]() is me]
            self._connections = [entry for entry in self._connections if entry[0]() is not me]
        for _, _, connection in mine:
            _close_quietly(connection)
        self._local.__dict__.pop("connection", None)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """An explicit write transaction (several statements, one commit), durable like a write.

        Inside ``batch()`` its statements join the block's transaction.
        """
        with self._writing("write", None) as connection:
            if getattr(self._local, "tx", False):
                yield connection
                return
            # IMMEDIATE takes the write lock at once, so the transaction never has to
            # upgrade a read lock (which would fail with SQLITE_BUSY instead of waiting).
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    def _errors(self, action: str, key: str | None) -> AbstractContextManager[None]:
        return translate_errors(sqlite3.Error, self._translate, action, key)

    def _translate(self, err: sqlite3.Error, action: str, key: str | None) -> StorageError:
        return storage_error(_is_full(err), action, key, str(self._path), err)


def _close_quietly(connection: sqlite3.Connection) -> None:
    with suppress(sqlite3.Error):
        connection.close()
