"""One SQLite file on a local disk: ``sqlite:///abs/path/file.db[?fsync=false]``.

The path after ``sqlite://`` is absolute, as in ``file:///``: ``sqlite:///data/wf.db`` is
``/data/wf.db`` (not SQLAlchemy's relative reading of three slashes).

Safe for several threads and processes of one machine (not for a network file system, where
SQLite's locks are not reliable). Each thread gets its own connection
(``_sqliteconn.SQLiteConnections``); the database runs in WAL mode, so readers never wait for a
writer, and writers wait up to ``busy_timeout`` for each other.

How each promise of :class:`~durableflow.storage.base.Storage` is kept:

1. ``put`` is one ``INSERT ... ON CONFLICT DO UPDATE`` statement, a transaction of its own.
2. ``create`` is an ``INSERT ... ON CONFLICT DO NOTHING``: the row count says who won.
3. ``swap`` is ``UPDATE ... WHERE key = ? AND value = ?``.
4. ``list`` is a range scan of the primary-key index: ``key >= prefix AND key < upper bound``.

``put_many`` writes every value in one transaction. Durability (``_sqlitesync``): every commit
runs with ``synchronous=NORMAL`` and a write is made durable by a *group sync* (an fsync of the log)
shared by every thread of the process that committed before it began: by
default a write is durable when it returns, as every backend's; ``?fsync=false`` never syncs
(a killed process loses nothing, a power cut may lose the last commits). The storage is
*ordered* (:attr:`ordered`): a power cut keeps a prefix of the commits, never a later one
without an earlier one.

Durability scopes, per thread:

- ``volatile()``: the block's writes are not synced;
- ``batch()``: the block's writes are one transaction (one commit: a commit costs more than
  the statements of a small write), synced once when the block exits normally; other threads'
  writes wait for the block, readers do not;
- ``sync()``: one group sync now, which also covers commits of other processes.

Writes of one process take a process-wide lock per database file, so its threads never wait
in SQLite's busy handler (which sleeps for milliseconds); other processes still do.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import SplitResult, quote, unquote

from durableflow.errors import StorageError, StorageURLError
from durableflow.storage._backend import (
    ReopenFromURL,
    parse_bool_option,
    url_options,
)
from durableflow.storage._sqliteconn import SQLiteConnections
from durableflow.storage.base import Storage, check_key, folder_start

__all__ = ["SQLiteStorage", "prefix_upper_bound"]

_MAX_CHAR = 0x10FFFF
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sync_marker (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
)


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``.

    None when there is none (an empty prefix, or one made only of U+10FFFF).
    """
    chars = list(prefix)
    while chars and ord(chars[-1]) == _MAX_CHAR:
        chars.pop()
    if not chars:
        return None
    following = ord(chars[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be stored; skip past them
        following = 0xE000
    chars[-1] = chr(following)
    return "".join(chars)


class SQLiteStorage(SQLiteConnections, ReopenFromURL, Storage):
    """Values as rows of one table in a SQLite database file.

    Args:
        path: the database file (absolute); with ``create`` it and its directory are created
            if missing.
        fsync: True for ``synchronous=FULL``, False for ``synchronous=NORMAL``.
        busy_timeout: seconds a writer waits for another writer's lock before failing.
        create: False opens an existing durableflow database only and creates nothing.

    Raises:
        StorageURLError: the path is not absolute or cannot hold a database; with ``create``
            False, "no durableflow storage at <path>" when the file is missing or foreign.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = True,
        busy_timeout: float = 30.0,
        create: bool = True,
    ) -> None:
        file = Path(path).expanduser()
        if not file.is_absolute():
            raise StorageURLError(f"sqlite storage needs an absolute path, got {str(path)!r}")
        if not create and not file.exists():
            raise StorageURLError(
                f"no durableflow storage at {file}: the file does not exist (in "
                "sqlite:///path the path is absolute; only commands that write create a storage)"
            )
        try:
            if create:
                file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageURLError(f"cannot create the directory of {str(file)!r}: {err}") from err
        if file.is_dir():
            raise StorageURLError(f"sqlite storage path {str(file)!r} is a directory")
        super().__init__(file, fsync, max(0, int(busy_timeout * 1000)))
        try:
            if not create:
                self._check_schema()
            elif not self._has_schema():
                with self._write() as connection:
                    for statement in _SCHEMA:
                        connection.execute(statement)
        except StorageError as err:
            self.close()
            if isinstance(err, StorageURLError):
                raise
            raise StorageURLError(f"cannot use {str(file)!r} as a sqlite storage: {err}") from err

    def _has_schema(self) -> bool:
        """Whether the tables exist already, read without the write lock.

        Opening a storage that another process is writing to then never waits for its
        transaction (``CREATE TABLE IF NOT EXISTS`` would take the write lock even when it
        changes nothing).
        """
        with self._errors("open", None):
            found = {
                row[0]
                for row in self._connection().execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name IN ('kv', 'sync_marker')"
                )
            }
        return found == {"kv", "sync_marker"}

    def _check_schema(self) -> None:
        """Refuse a database without durableflow's table, reading it without changing it.

        A connection of its own, read-only: the connections of the storage switch the file to
        WAL mode, which writes to it, and a foreign file must be left as it was.
        """
        uri = f"file:{quote(str(self._path))}?mode=ro"
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=self._busy_ms / 1000)
            try:
                found = connection.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv'"
                ).fetchone()
            finally:
                connection.close()
        except sqlite3.Error as err:
            raise StorageURLError(
                f"no durableflow storage at {self._path}: cannot read it as a database: {err}"
            ) from err
        if found is None:
            raise StorageURLError(
                f"no durableflow storage at {self._path}: the file is not a durableflow "
                "database (it has no table kv)"
            )

    @classmethod
    def from_url(cls, parts: SplitResult, *, create: bool = True) -> SQLiteStorage:
        """Open ``sqlite:///abs/path/file.db`` with an optional ``?fsync=false``.

        The path after the three slashes is absolute: ``sqlite:///data/wf.db`` is
        ``/data/wf.db``. ``create`` False: the database must exist (see the class).
        """
        if parts.netloc not in ("", "localhost"):
            raise StorageURLError(
                f"sqlite URL must be sqlite:///absolute/path.db, got host {parts.netloc!r}"
            )
        path = unquote(parts.path)
        if not path or not path.startswith("/"):
            raise StorageURLError("sqlite URL must name an absolute path: sqlite:///path/wf.db")
        options = url_options(parts.query, {"fsync": bool}, scheme="sqlite")
        fsync = parse_bool_option("fsync", options.get("fsync", "true"))
        return cls(path, fsync=fsync, create=create)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    # -- operations ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """One SELECT by primary key."""
        check_key(key)
        with self._errors("read", key):
            row = (
                self._connection().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            )
        return None if row is None else bytes(row[0])

    def put(self, key: str, data: bytes) -> None:
        """An upsert, a transaction of its own."""
        check_key(key)
        with self._writing("write", key) as connection:
            connection.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, bytes(data)),
            )

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Every value in one transaction: one commit for the lot."""
        rows = [(check_key(key), bytes(data)) for key, data in items]
        if not rows:
            return
        with self._errors("write", rows[0][0]), self._write() as connection:
            connection.executemany(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                rows,
            )

    def create(self, key: str, data: bytes) -> bool:
        """An INSERT that does nothing if the key exists; True if it inserted."""
        check_key(key)
        with self._writing("create", key) as connection:
            cursor = connection.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, bytes(data)),
            )
        return cursor.rowcount == 1

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        """An UPDATE of the row whose value still equals ``expected``."""
        check_key(key)
        with self._writing("swap", key) as connection:
            cursor = connection.execute(
                "UPDATE kv SET value = ? WHERE key = ? AND value = ?",
                (bytes(data), key, bytes(expected)),
            )
        return cursor.rowcount == 1

    def delete(self, key: str) -> None:
        """A DELETE by primary key."""
        check_key(key)
        with self._writing("delete", key) as connection:
            connection.execute("DELETE FROM kv WHERE key = ?", (key,))

    def list(self, prefix: str) -> list[str]:
        """A range scan of the key index."""
        where, args = self._range(prefix)
        with self._errors("list", prefix):
            rows = self._connection().execute(f"SELECT key FROM kv{where} ORDER BY key", args)
            return [row[0] for row in rows]

    def list_children(self, folder: str) -> builtins.list[str]:
        """A range scan of the key index; the names after ``folder`` (one level).

        The suffixes are cut and filtered here: ``substr``/``instr`` in SQL cost more per row.
        """
        start = folder_start(folder)
        where, args = self._range(folder)
        with self._errors("list", folder):
            rows = self._connection().execute(f"SELECT key FROM kv{where} ORDER BY key", args)
            return [name for (key,) in rows if "/" not in (name := key[start:])]

    def delete_prefix(self, prefix: str) -> None:
        """One DELETE over the key range."""
        where, args = self._range(prefix)
        with self._writing("delete", prefix) as connection:
            connection.execute(f"DELETE FROM kv{where}", args)

    @property
    def ordered(self) -> bool:
        """True: a power cut keeps a prefix of the commits (the log is append-only)."""
        return True

    @contextmanager
    def volatile(self) -> Iterator[None]:
        """This thread's writes in the block are committed without a sync."""
        with self._scope("volatile"):
            yield

    @contextmanager
    def batch(self) -> Iterator[None]:
        """This thread's writes in the block: one transaction, one group sync at its end."""
        with self._scope("batch") as outermost:
            if not outermost:
                yield
                return
            try:
                yield
            except BaseException:
                self._end_batch()
                raise
            generation = self._end_batch()
        if generation:
            self._sync_through(generation)

    def sync(self) -> None:
        """Make every commit so far durable, this process's and others' (one group sync).

        Inside ``batch()``, the block's own writes are committed and synced at its end.
        """
        if self._fsync:
            with self._errors("sync", None):
                self._group().sync_now(self._sync_log)

    def close(self) -> None:
        """Close every connection this storage opened, in every thread."""
        self._closed = True
        self._drop_connections()

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _range(prefix: str) -> tuple[str, tuple[str, ...]]:
        upper = prefix_upper_bound(prefix)
        if not prefix:
            return "", ()
        if upper is None:
            return " WHERE key >= ?", (prefix,)
        return " WHERE key >= ? AND key < ?", (prefix, upper)
