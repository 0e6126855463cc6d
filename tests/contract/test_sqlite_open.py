"""Opening an existing SQLite storage takes no write lock (issue 17).

``CREATE TABLE IF NOT EXISTS`` takes the write lock even when the tables exist: opening a
storage while another connection held a write transaction waited for it (up to
``busy_timeout``). The schema is now looked up with a read first.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from durableflow.errors import StorageURLError
from durableflow.storage.sqlite import SQLiteStorage


def test_opening_while_another_connection_writes_does_not_wait(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = SQLiteStorage(path)
    first.put("a", b"1")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO kv (key, value) VALUES ('b', x'32')")
    try:
        start = time.monotonic()
        # busy_timeout 0: any wait for the write lock fails at once instead of waiting.
        second = SQLiteStorage(path, busy_timeout=0)
        try:
            assert second.get("a") == b"1"
            assert second.get("b") is None  # not committed yet
        finally:
            second.close()
        assert time.monotonic() - start < 5
    finally:
        writer.execute("COMMIT")
        writer.close()
    third = SQLiteStorage(path, busy_timeout=0)
    assert third.get("b") == b"2"
    third.close()
    first.close()


def test_a_new_file_still_gets_its_schema(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "new.db")
    storage.put("k", b"v")
    storage.close()
    again = SQLiteStorage(tmp_path / "new.db", create=False)
    assert again.get("k") == b"v"
    again.close()


def test_a_foreign_database_is_still_refused_read_only(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE people (name TEXT)")
    connection.commit()
    connection.close()
    with pytest.raises(StorageURLError, match="no table kv"):
        SQLiteStorage(path, create=False)
