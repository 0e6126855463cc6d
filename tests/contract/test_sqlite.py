"""The storage contract on SQLite: synchronous=FULL (default) and ?fsync=false."""

import os
import sqlite3
import threading
import time
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


def _marker(storage: SQLiteStorage) -> int:
    """The syncs this process ran on the storage's file (fsyncs of its log)."""
    return storage._group().syncs


def test_database_is_in_wal_mode_and_each_write_is_synced_on_return(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite://{tmp_path / 'wf.db'}")
    assert isinstance(storage, SQLiteStorage)
    assert storage.ordered
    assert _pragma(storage, "journal_mode") == "wal"
    assert storage.url == f"sqlite://{tmp_path / 'wf.db'}"
    before = _marker(storage)
    storage.put("a", b"1")
    assert storage.create("b", b"2")
    assert storage.swap("b", b"2", b"3")
    storage.delete("a")
    storage.put_many([("c", b"4"), ("d", b"5")])
    assert _marker(storage) == before + 5  # one sync after each write
    # commits themselves run NORMAL: the fsync of the log is the sync
    assert storage._connection().execute("PRAGMA synchronous").fetchone()[0] == 1


def test_fsync_false_never_syncs(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite://{tmp_path / 'wf.db'}?fsync=false")
    assert isinstance(storage, SQLiteStorage)
    storage.put("a", b"1")
    with storage.batch():
        storage.put("b", b"1")
    storage.sync()
    assert _marker(storage) == 0
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


def test_volatile_skips_the_sync_of_this_threads_writes_only(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "wf.db")
    base = _marker(storage)  # creating the tables was synced
    with storage.volatile():
        storage.put("a", b"1")
        with storage.batch():  # nested: joins the outer scope
            storage.put("b", b"1")
        assert _marker(storage) == base
        other = threading.Thread(target=lambda: storage.put("c", b"1"))
        other.start()
        other.join()
        assert _marker(storage) == base + 1  # another thread's write is synced as usual
    assert _marker(storage) == base + 1
    assert storage.list("") == ["a", "b", "c"]


def test_batch_ends_with_one_sync_when_it_wrote(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "wf.db")
    base = _marker(storage)
    with storage.batch():
        assert storage.get("nothing") is None
    assert _marker(storage) == base  # a block that wrote nothing costs no sync
    with storage.batch():
        storage.put("a", b"1")
        storage.put("b", b"2")
        assert _marker(storage) == base
    assert _marker(storage) == base + 1
    with pytest.raises(RuntimeError), storage.batch():
        storage.put("c", b"3")
        raise RuntimeError("failed block")
    assert _marker(storage) == base + 1  # no sync after a failed block, like a crash in its middle
    assert storage.list("") == ["a", "b", "c"]


def test_a_batch_is_one_transaction_seen_by_others_when_it_ends(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "wf.db")
    other = SQLiteStorage(tmp_path / "wf.db")
    seen: list[object] = []
    with storage.batch():
        storage.put("a", b"1")
        assert storage.create("b", b"2")
        storage.put_many([("c", b"3")])  # its own transaction joins the block's
        with storage.volatile():  # nested: joins the block
            storage.delete("a")
        assert storage.list("") == ["b", "c"]  # this thread sees its writes at once
        reader = threading.Thread(target=lambda: seen.append(other.list("")))
        reader.start()
        reader.join()
    assert seen == [[]]  # another connection saw nothing of the open block
    assert other.list("") == ["b", "c"]


def test_writes_of_a_block_that_raised_are_kept(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "wf.db")
    with pytest.raises(KeyError), storage.batch():
        storage.put("a", b"1")
        raise KeyError("a protocol step failed")
    assert SQLiteStorage(tmp_path / "wf.db").get("a") == b"1"
    storage.put("after", b"")  # the write lock was released
    assert storage.get("after") == b""


def test_sync_runs_one_even_when_this_process_wrote_nothing(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "wf.db")
    base = _marker(storage)
    with storage.volatile():
        storage.put("a", b"1")
    other = SQLiteStorage(tmp_path / "wf.db")  # another writer's commits are in the same log
    other.sync()
    other.sync()
    assert _marker(storage) == base + 2


def test_writers_that_commit_during_a_sync_share_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: while one sync runs, 7 threads commit; one more sync covers them all.

    The sync holds no lock, so they can commit meanwhile.
    """
    storage = SQLiteStorage(tmp_path / "wf.db")
    storage.put("warm", b"")
    group = storage._group()
    first_started, release = threading.Event(), threading.Event()
    real = SQLiteStorage._sync_log
    calls: list[str] = []

    def gated(self: SQLiteStorage) -> None:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            first_started.set()
            assert release.wait(30)
        real(self)

    monkeypatch.setattr(SQLiteStorage, "_sync_log", gated)
    syncs = group.syncs
    first = threading.Thread(target=storage.put, args=("first", b""), name="first")
    first.start()
    assert first_started.wait(30)
    others = [
        threading.Thread(target=storage.put, args=(f"k{i}", b""), name=f"w{i}") for i in range(7)
    ]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 30
    while group._written < group._synced + 8 and time.monotonic() < deadline:
        time.sleep(0.01)  # all seven committed and wait for durability
    release.set()
    for thread in [first, *others]:
        thread.join(30)
        assert not thread.is_alive()
    assert group.syncs - syncs == 2, calls
    assert len(storage.list("k")) == 7


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


# SIGKILL at each step of a write's durability protocol (storage/_sqlitesync.py): 1 commit,
# 2 sync; and inside a batch() block, whose transaction commits at the block's end.
_KILLED_WRITER = r"""
import os, signal, sys
from durableflow.storage.sqlite import SQLiteStorage

storage = SQLiteStorage(sys.argv[1])
where = sys.argv[2]
storage.put("before", b"1")
if where == "between-commit-and-sync":
    SQLiteStorage._sync_log = lambda self: os.kill(os.getpid(), signal.SIGKILL)
    storage.put("k", b"v")
elif where == "inside-a-batch":
    with storage.batch():
        storage.put("k", b"v")
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize(
    ("where", "kept"), [("between-commit-and-sync", True), ("inside-a-batch", False)]
)
def test_a_killed_writer_leaves_its_commits_and_no_lock(
    tmp_path: Path, where: str, kept: bool
) -> None:
    import signal
    import subprocess
    import sys

    path = tmp_path / "wf.db"
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(path), where], timeout=60, check=False
    )
    assert done.returncode == -signal.SIGKILL
    storage = SQLiteStorage(path)
    assert storage.get("before") == b"1"
    # committed before the kill: kept (a power cut could still take it: it was not synced);
    # inside a block: the block's transaction died with the process, as if never begun
    assert (storage.get("k") == b"v") is kept
    storage.put("after", b"2")  # the dead writer's locks went with it
    assert storage.get("after") == b"2"


def test_a_database_opened_through_a_symlink_syncs_the_real_log(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    storage = SQLiteStorage(tmp_path / "link" / "wf.db")
    calls: list[str] = []
    real_fsync = os.fsync

    def spying(fd: int) -> None:
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", spying)
        storage.put("k", b"v")
    assert calls == [str(tmp_path / "real" / "wf.db-wal")]
