"""The storage contract on SQLite: synchronous=FULL (default) and ?fsync=false."""

import sqlite3
import threading
from pathlib import Path

import pytest

from durableflow.errors import StorageFullError, StorageURLError
from durableflow.storage.base import Storage
from durableflow.storage.sqlite import SQLiteStorage, prefix_upper_bound
from durableflow.storage.urls import open_storage
from durableflow.testing import StorageContract


class TestSQLiteStorage(StorageContract):
    def make_storage(self, tmp_path: Path) -> Storage:
        return open_storage(f"sqlite://{tmp_path / 'wf.db'}")


class TestSQLiteStorageWithoutFsync(StorageContract):
    def make_storage(self, tmp_path: Path) -> Storage:
        return open_storage(f"sqlite://{tmp_path / 'wf.db'}?fsync=false")


def _pragma(storage: SQLiteStorage, name: str) -> object:
    with sqlite3.connect(storage.path) as connection:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]


def test_database_is_in_wal_mode_with_full_sync_by_default(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite://{tmp_path / 'wf.db'}")
    assert isinstance(storage, SQLiteStorage)
    assert _pragma(storage, "journal_mode") == "wal"
    sync = storage._connection().execute("PRAGMA synchronous").fetchone()[0]
    assert sync == 2  # FULL
    assert storage.url == f"sqlite://{tmp_path / 'wf.db'}"


def test_fsync_false_selects_synchronous_normal(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite://{tmp_path / 'wf.db'}?fsync=false")
    assert isinstance(storage, SQLiteStorage)
    assert storage._connection().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert storage.url.endswith("?fsync=false")


def test_each_thread_has_its_own_connection_and_close_closes_all(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "wf.db")
    seen = []

    def work() -> None:
        seen.append(storage._connection())
        storage.put("k", b"v")

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in seen}) == 3
    storage.close()
    with pytest.raises(sqlite3.ProgrammingError):
        seen[0].execute("SELECT 1")


def test_database_full_raises_storage_full_error(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "wf.db")
    storage.put("seed", b"x")
    page_count = storage._connection().execute("PRAGMA page_count").fetchone()[0]
    storage._connection().execute(f"PRAGMA max_page_count = {page_count + 2}")
    with pytest.raises(StorageFullError) as caught:
        storage.put("big", b"x" * 1_000_000)
    assert caught.value.key == "big"
    assert storage.get("big") is None
    assert storage.get("seed") == b"x"


@pytest.mark.parametrize(
    "url",
    ["sqlite://relative.db", "sqlite:///x.db?fsync=maybe", "sqlite:///x.db?mode=ro", "sqlite://"],
)
def test_bad_sqlite_urls_raise_storage_url_error(url: str) -> None:
    with pytest.raises(StorageURLError):
        open_storage(url)


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StorageURLError, match="directory"):
        SQLiteStorage(tmp_path)


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [
        ("", None),
        ("a", "b"),
        ("a/b", "a/c"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("\ud7ff", "\ue000"),
        ("z/", "z0"),
    ],
)
def test_prefix_upper_bound(prefix: str, bound: str | None) -> None:
    assert prefix_upper_bound(prefix) == bound


def _synchronous(storage: SQLiteStorage) -> int:
    return int(storage._connection().execute("PRAGMA synchronous").fetchone()[0])


def test_volatile_relaxes_only_this_threads_commits_for_the_block(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "wf.db")
    seen_elsewhere = []
    with storage.volatile():
        assert _synchronous(storage) == 1  # NORMAL
        other = threading.Thread(target=lambda: seen_elsewhere.append(_synchronous(storage)))
        other.start()
        other.join()
        with storage.batch():  # nested: joins the outer scope
            assert _synchronous(storage) == 1
        assert _synchronous(storage) == 1
    assert _synchronous(storage) == 2  # FULL again
    assert seen_elsewhere == [2]


def test_batch_ends_with_one_full_commit_when_it_wrote(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "wf.db")

    def marker() -> int | None:
        row = storage._connection().execute("SELECT n FROM sync_marker").fetchone()
        return None if row is None else int(row[0])

    with storage.batch():
        assert storage.get("nothing") is None
    assert marker() is None  # a block that wrote nothing costs no sync
    with storage.batch():
        storage.put("a", b"1")
        storage.put("b", b"2")
        assert _synchronous(storage) == 1
    assert marker() == 1
    assert _synchronous(storage) == 2
    with pytest.raises(RuntimeError), storage.batch():
        storage.put("c", b"3")
        raise RuntimeError("failed block")
    assert marker() == 1  # no sync after a failed block, like a crash in its middle
    assert storage.list("") == ["a", "b", "c"]


def test_scopes_do_nothing_with_fsync_off(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "wf.db", fsync=False)
    with storage.batch():
        storage.put("a", b"1")
    assert storage._connection().execute("SELECT count(*) FROM sync_marker").fetchone()[0] == 0
    assert _synchronous(storage) == 1


_CLOSE_WHILE_WRITING = r"""
import sys, threading, time, urllib.parse
from durableflow.errors import StorageError
from durableflow.storage.sqlite import SQLiteStorage

storage = SQLiteStorage.from_url(urllib.parse.urlsplit(sys.argv[1]))
ended = []


def writer(n: int) -> None:
    i = 0
    while True:
        try:
            storage.create(f"k{n}-{i}", b"x" * 100)
            storage.get(f"k{n}-{i}")
        except StorageError:  # StorageUnavailableError: closed
            ended.append(n)
            return
        i += 1


threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
for thread in threads:
    thread.start()
time.sleep(float(sys.argv[2]))
storage.close()  # while six threads write: never closes a connection under a statement
for thread in threads:
    thread.join(10)
assert sorted(ended) == list(range(6)), ended
print("ok")
"""


def test_close_while_other_threads_write_does_not_crash(tmp_path):
    """A Client closed while task threads write (shutdown without wait) crashed CPython: close()
    closed their connections under a running statement (SIGSEGV in sqlite3, about one run in
    six of this stress before the fix). Each run is a child process, so a crash fails this test
    instead of the whole test run."""
    import subprocess
    import sys

    for run in range(15):
        url = f"sqlite://{tmp_path / f'db{run}.sqlite'}"
        done = subprocess.run(
            [sys.executable, "-c", _CLOSE_WHILE_WRITING, url, str(0.01 + run % 5 * 0.02)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and done.stdout.strip() == "ok", (
            run,
            done.returncode,
            done.stderr[-2000:],
        )
