"""The storage contract: one backend-agnostic test class that every backend subclasses.

::

    from durableflow.testing import StorageContract

    class TestMyStorage(StorageContract):
        def make_storage(self, tmp_path):
            return MyStorage(tmp_path / "data")     # a fresh, empty storage per test

A subclass may instead override the ``storage`` fixture (to use other fixtures, say), and may
lower the size attributes below for a slow backend. Tests that reopen the storage in another
process skip, with a reason, for ``memory://``, which lives in one process.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pytest

from durableflow.storage.base import Storage
from durableflow.storage.urls import open_storage
from durableflow.testing import _processes

__all__ = ["ILLEGAL_KEYS", "UNUSUAL_KEYS", "StorageContract"]

T = TypeVar("T")
MiB = 1024 * 1024

UNUSUAL_KEYS = (
    "odd/with space",
    "odd/ünïcødé/日本語",
    "odd/emoji 😀",
    "odd/at@sign",
    "odd/colon:x",
    "odd/plus+x",
    "odd/equals=x",
    "odd/percent%20x",
    "odd/percent%",
    "odd/hash#x",
    "odd/question?x",
    "odd/amp&x",
    "odd/tilde~x",
    "odd/quote'x",
    "odd/comma,semi;x",
    "odd/dots.in.the.middle.",
)

ILLEGAL_KEYS = (
    "",
    ".",
    "..",
    "a/../b",
    "a/..",
    "../a",
    ".hidden",
    "a/.hidden",
    "a//b",
    "/a",
    "a/",
    "a/./b",
    "a\nb",
    "a\x00b",
    "x" * 2000,
)


def _key_id(key: str) -> str:
    return repr(key) if len(key) <= 20 else f"{key[:8]!r}...({len(key)} chars)"


def _in_threads(count: int, target: Callable[[int], T]) -> list[T]:
    """Run ``target(0..count-1)`` on ``count`` threads at once; re-raise the first failure."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(target, range(count)))


class StorageContract:
    """The promises of :class:`~durableflow.storage.base.Storage`, as tests.

    Subclass it as ``Test...`` and implement :meth:`make_storage` (or override the
    ``storage`` fixture). The class attributes size the tests.
    """

    large_value_size: int = 8 * MiB
    """Bytes of the large round-trip value."""
    atomic_value_size: int = 1 * MiB
    """Bytes of each of the two values a writer alternates while readers read."""
    atomic_writes: int = 20
    """Writes of the alternating writer."""
    atomic_readers: int = 2
    """Reader threads that check every value they see is whole."""
    many_keys: int = 1100
    """Keys of the listing test: more than one S3 page (1,000)."""
    race_threads: int = 16
    """Threads racing ``create`` (and ``swap``) for one key."""
    race_rounds: int = 4
    """Keys raced for, one after the other."""
    race_processes: int = 4
    """Processes racing ``create`` for one key."""
    process_rounds: int = 3
    """Keys the processes race for."""
    process_timeout: float = 90.0
    """Seconds a child process may take."""

    def make_storage(self, tmp_path: Path) -> Storage:
        """Return a fresh, empty storage for one test; ``tmp_path`` is that test's directory."""
        raise NotImplementedError("subclass StorageContract and implement make_storage()")

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        """The storage under test, closed afterwards."""
        storage = self.make_storage(tmp_path)
        try:
            yield storage
        finally:
            storage.close()

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def reopen(storage: Storage) -> Storage:
        """A second handle on the same data, opened from ``storage.url`` in this process."""
        if storage.url.rstrip("/") == "memory:":
            pytest.skip("an unnamed memory:// storage cannot be reopened from its URL")
        return open_storage(storage.url)

    @staticmethod
    def require_other_processes(storage: Storage) -> str:
        """Return ``storage.url``, or skip when other processes cannot open it."""
        if urlsplit(storage.url).scheme == "memory":
            pytest.skip("memory:// storage lives in one process; nothing to reopen elsewhere")
        return storage.url

    # -- get and put --------------------------------------------------------------------------

    def test_get_of_a_missing_key_is_none(self, storage: Storage) -> None:
        """A key never written reads as None, not an error."""
        assert storage.get("missing/key") is None
        assert storage.get("missing") is None

    def test_put_then_get_returns_the_same_bytes(self, storage: Storage) -> None:
        """Small, empty and binary values come back byte for byte."""
        values = {
            "rt/small": b"hello",
            "rt/empty": b"",
            "rt/binary": bytes(range(256)) * 4,
            "rt/nul-and-newlines": b"\x00\n\r\x00",
        }
        for key, value in values.items():
            storage.put(key, value)
        for key, value in values.items():
            assert storage.get(key) == value

    def test_put_replaces_the_old_value(self, storage: Storage) -> None:
        """A put over an existing key replaces the whole value."""
        storage.put("replace/k", b"old value, longer")
        storage.put("replace/k", b"new")
        assert storage.get("replace/k") == b"new"

    def test_large_value_round_trips(self, storage: Storage) -> None:
        """A large value (``large_value_size``) comes back byte for byte."""
        value = os.urandom(self.large_value_size)
        storage.put("large/value", value)
        assert storage.get("large/value") == value

    def test_put_many_stores_every_value(self, storage: Storage) -> None:
        """put_many stores every value, the last write of a key winning."""
        storage.put_many([])
        items = [(f"many-put/{i}", f"value {i}".encode()) for i in range(5)]
        storage.put_many([*items, ("many-put/0", b"last write wins")])
        assert storage.get("many-put/0") == b"last write wins"
        for key, value in items[1:]:
            assert storage.get(key) == value

    def test_readers_see_only_whole_values_while_a_writer_alternates(
        self, storage: Storage
    ) -> None:
        """A put is atomic: concurrent readers see the old or the new value, never a part."""
        key = "atomic/value"
        first = b"a" * self.atomic_value_size
        second = b"b" * self.atomic_value_size
        storage.put(key, first)
        stop = threading.Event()
        started = threading.Barrier(self.atomic_readers + 1)
        torn: list[str] = []
        reads = [0] * self.atomic_readers

        def reader(index: int) -> None:
            started.wait(30)
            while not stop.is_set():
                value = storage.get(key)
                if value != first and value != second:
                    size = None if value is None else len(value)
                    torn.append(f"size {size}, starts {value[:8] if value else value!r}")
                reads[index] += 1

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(self.atomic_readers)]
        for thread in threads:
            thread.start()
        try:
            started.wait(30)
            write = 0
            deadline = time.monotonic() + 60
            # Keep writing until every reader has overlapped a few writes (fast backends can
            # finish ``atomic_writes`` before a reader thread is even scheduled).
            while write < self.atomic_writes or min(reads) < 3:
                storage.put(key, second if write % 2 == 0 else first)
                write += 1
                if time.monotonic() > deadline:
                    break
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        assert not torn, f"readers saw partial values: {torn[:5]}"
        assert min(reads) >= 3, f"readers did not overlap the writer: {reads} reads"

    def test_writes_in_durability_scopes_are_visible_at_once(self, storage: Storage) -> None:
        """Inside batch() and volatile() (nested too) writes stay atomic and visible at once."""
        with storage.batch():
            storage.put("scope/batch", b"1")
            assert storage.get("scope/batch") == b"1"
            assert storage.create("scope/batch-created", b"2") is True
            with storage.volatile():
                storage.put("scope/nested", b"3")
            assert storage.swap("scope/batch", b"1", b"4") is True
        with storage.volatile():
            storage.put_many([("scope/volatile", b"5")])
            assert storage.get("scope/volatile") == b"5"
        with pytest.raises(KeyError), storage.batch():
            storage.put("scope/failed-block", b"6")
            raise KeyError("the block fails after a write")
        assert storage.get("scope/failed-block") == b"6"  # written; only its sync was skipped
        assert storage.list("scope/") == [
            "scope/batch",
            "scope/batch-created",
            "scope/failed-block",
            "scope/nested",
            "scope/volatile",
        ]
        assert storage.get("scope/batch") == b"4"

    # -- create -------------------------------------------------------------------------------

    def test_create_stores_only_when_the_key_is_absent(self, storage: Storage) -> None:
        """A create writes only where nothing is, and reports whether it did."""
        assert storage.create("create/k", b"first") is True
        assert storage.create("create/k", b"second") is False
        assert storage.get("create/k") == b"first"
        storage.delete("create/k")
        assert storage.create("create/k", b"") is True
        assert storage.get("create/k") == b""
        assert storage.create("create/k", b"again") is False

    def test_create_has_exactly_one_winner_among_threads(self, storage: Storage) -> None:
        """Of ``race_threads`` threads creating one key at once, exactly one wins."""
        for round_ in range(self.race_rounds):
            key = f"race/create/{round_}"
            barrier = threading.Barrier(self.race_threads)

            def racer(index: int, key: str = key, barrier: threading.Barrier = barrier) -> bool:
                barrier.wait(30)
                return storage.create(key, f"thread {index}".encode())

            won = _in_threads(self.race_threads, racer)
            assert won.count(True) == 1, f"round {round_}: {won.count(True)} winners"
            assert storage.get(key) == f"thread {won.index(True)}".encode()

    def test_create_has_exactly_one_winner_among_processes(self, storage: Storage) -> None:
        """Of ``race_processes`` processes creating one key at once, exactly one wins."""
        url = self.require_other_processes(storage)
        keys = [f"race/process/{i}" for i in range(self.process_rounds)]
        labels = [f"process {i}" for i in range(self.race_processes)]
        won = _processes.run_in_processes(
            _processes.create_race,
            [(url, keys, label) for label in labels],
            timeout=self.process_timeout,
            barrier_parties=self.race_processes,
        )
        for key in keys:
            winners = [labels[i] for i, keys_won in enumerate(won) if key in keys_won]
            assert len(winners) == 1, f"{key}: winners {winners}"
            assert storage.get(key) == winners[0].encode()

    # -- swap ---------------------------------------------------------------------------------

    def test_swap_replaces_only_when_the_expected_value_is_current(self, storage: Storage) -> None:
        """A swap with a stale expected value fails and changes nothing."""
        storage.put("swap/k", b"one")
        assert storage.swap("swap/k", b"stale", b"two") is False
        assert storage.get("swap/k") == b"one"
        assert storage.swap("swap/k", b"one", b"two") is True
        assert storage.get("swap/k") == b"two"
        assert storage.swap("swap/k", b"one", b"three") is False
        assert storage.get("swap/k") == b"two"

    def test_swap_of_an_empty_value(self, storage: Storage) -> None:
        """A swap works from and to an empty value."""
        storage.put("swap/empty", b"")
        assert storage.swap("swap/empty", b"", b"filled") is True
        assert storage.swap("swap/empty", b"filled", b"") is True
        assert storage.get("swap/empty") == b""

    def test_swap_of_a_missing_key_fails_and_creates_nothing(self, storage: Storage) -> None:
        """A swap of a missing (or deleted) key fails, whatever is expected."""
        assert storage.swap("swap/missing", b"", b"x") is False
        assert storage.swap("swap/missing", b"anything", b"x") is False
        assert storage.get("swap/missing") is None
        storage.put("swap/deleted", b"v")
        storage.delete("swap/deleted")
        assert storage.swap("swap/deleted", b"v", b"x") is False
        assert storage.get("swap/deleted") is None

    def test_swap_has_exactly_one_winner_among_threads(self, storage: Storage) -> None:
        """Of ``race_threads`` threads swapping one value at once, exactly one wins."""
        for round_ in range(self.race_rounds):
            key = f"race/swap/{round_}"
            storage.put(key, b"start")
            barrier = threading.Barrier(self.race_threads)

            def racer(index: int, key: str = key, barrier: threading.Barrier = barrier) -> bool:
                barrier.wait(30)
                return storage.swap(key, b"start", f"thread {index}".encode())

            won = _in_threads(self.race_threads, racer)
            assert won.count(True) == 1, f"round {round_}: {won.count(True)} winners"
            assert storage.get(key) == f"thread {won.index(True)}".encode()

    # -- list ---------------------------------------------------------------------------------

    def test_list_is_complete_and_sorted_past_one_thousand_keys(self, storage: Storage) -> None:
        """A listing is complete and sorted past one S3 page (``many_keys`` keys)."""
        keys = [f"many/{i:05d}" for i in range(self.many_keys)]
        storage.put_many([(key, key.encode()) for key in reversed(keys)])
        storage.put_many([("many-more/x", b""), ("mane", b"")])
        assert storage.list("many/") == keys
        assert storage.list("many") == sorted([*keys, "many-more/x"])  # '-' sorts before '/'
        assert storage.get(keys[-1]) == keys[-1].encode()

    def test_list_with_a_prefix_that_is_a_partial_name(self, storage: Storage) -> None:
        """A prefix is a string prefix, not a folder: 'part/ab' finds 'part/abc'."""
        for key in ("part/abc", "part/abd", "part/ab/x", "part/b", "partial/x", "par"):
            storage.put(key, b"")
        assert storage.list("part/ab") == ["part/ab/x", "part/abc", "part/abd"]
        assert storage.list("part/") == ["part/ab/x", "part/abc", "part/abd", "part/b"]
        assert storage.list("part") == ["part/ab/x", "part/abc", "part/abd", "part/b", "partial/x"]
        assert storage.list("part/z") == []
        assert storage.list("nothing/") == []
        assert storage.list("") == sorted(
            ["par", "part/ab/x", "part/abc", "part/abd", "part/b", "partial/x"]
        )

    def test_list_never_reaches_outside_the_storage(self, storage: Storage) -> None:
        """Prefixes with '..', '.' or empty segments find and delete nothing."""
        storage.put("inside/x", b"1")
        for prefix in ("../", "inside/../", "../inside/", "/", "inside//", "./"):
            # Refusing such a prefix with ValueError is as good as finding nothing.
            with contextlib.suppress(ValueError):
                assert storage.list(prefix) == [], prefix
        for prefix in ("inside/../", "./", "/"):
            with contextlib.suppress(ValueError):
                storage.delete_prefix(prefix)
        assert storage.get("inside/x") == b"1"

    # -- delete -------------------------------------------------------------------------------

    def test_delete_is_idempotent(self, storage: Storage) -> None:
        """Deleting a missing key is not an error; a deleted key can be created again."""
        storage.delete("del/never-there")
        storage.put("del/k", b"v")
        storage.delete("del/k")
        assert storage.get("del/k") is None
        storage.delete("del/k")
        assert storage.list("del/") == []
        assert storage.create("del/k", b"new") is True

    def test_a_delete_is_never_undone_by_a_racing_swap(self, storage: Storage) -> None:
        """A swap in flight when a delete runs either lands before it or fails.

        A thread swaps a key forward until a swap fails; the test deletes the key meanwhile.
        Once both are done the key must be gone: a swap that had read the old value must not
        write it back after the delete (a released lease or slot would come back to life).
        """
        for round_ in range(self.race_rounds):
            key = f"race/delete/{round_}"
            storage.put(key, b"0")
            swapped = threading.Event()

            def swapper(key: str = key, swapped: threading.Event = swapped) -> int:
                current = b"0"
                for n in range(1, 200):
                    following = str(n).encode()
                    if not storage.swap(key, current, following):
                        return n - 1
                    current = following
                    swapped.set()
                return 199

            with ThreadPoolExecutor(1) as pool:
                done = pool.submit(swapper)
                swapped.wait(30)
                storage.delete(key)
                swaps = done.result(60)
            assert storage.get(key) is None, f"round {round_}: back after {swaps} swaps"
            assert key not in storage.list("race/delete/")

    def test_delete_prefix_removes_that_prefix_only(self, storage: Storage) -> None:
        """delete_prefix removes exactly the keys that start with the prefix."""
        for key in ("dp/a/1", "dp/a/2", "dp/a/sub/3", "dp/ab", "dp/b", "dpx"):
            storage.put(key, b"")
        storage.delete_prefix("dp/a/")
        assert storage.list("dp") == ["dp/ab", "dp/b", "dpx"]
        storage.delete_prefix("dp/a")
        assert storage.list("dp") == ["dp/b", "dpx"]
        storage.delete_prefix("nothing/")
        storage.delete_prefix("dp/")
        assert storage.list("") == ["dpx"]
        storage.put("dp/a/1", b"back")
        assert storage.get("dp/a/1") == b"back"

    def test_writes_under_a_prefix_another_handle_deleted(self, storage: Storage) -> None:
        """After another handle deleted a prefix, writing under it again works."""
        other = self.reopen(storage)
        try:
            storage.put("again/x/1", b"1")
            other.delete_prefix("again/")
            storage.put("again/x/2", b"2")
            assert storage.create("again/y/3", b"3") is True
            assert other.list("again/") == ["again/x/2", "again/y/3"]
        finally:
            other.close()

    # -- keys ---------------------------------------------------------------------------------

    def test_keys_with_unusual_legal_characters(self, storage: Storage) -> None:
        """Spaces, unicode and URL-special characters are ordinary key characters."""
        for key in UNUSUAL_KEYS:
            storage.put(key, key.encode())
        for key in UNUSUAL_KEYS:
            assert storage.get(key) == key.encode(), key
        assert storage.list("odd/") == sorted(UNUSUAL_KEYS)
        assert storage.list("odd/percent%") == ["odd/percent%", "odd/percent%20x"]
        key = UNUSUAL_KEYS[1]
        assert storage.create(key, b"x") is False
        assert storage.swap(key, key.encode(), b"swapped") is True
        assert storage.get(key) == b"swapped"
        for key in UNUSUAL_KEYS:
            storage.delete(key)
        assert storage.list("odd/") == []

    @pytest.mark.parametrize("key", ILLEGAL_KEYS, ids=_key_id)
    def test_illegal_keys_raise_value_error(self, storage: Storage, key: str) -> None:
        """Every operation refuses an illegal key with ValueError."""
        with pytest.raises(ValueError):
            storage.put(key, b"x")
        with pytest.raises(ValueError):
            storage.create(key, b"x")
        with pytest.raises(ValueError):
            storage.swap(key, b"", b"x")
        with pytest.raises(ValueError):
            storage.get(key)
        with pytest.raises(ValueError):
            storage.delete(key)
        with pytest.raises(ValueError):
            storage.put_many([("fine/key", b"x"), (key, b"x")])
        assert storage.list("") in ([], ["fine/key"])

    # -- reopening ----------------------------------------------------------------------------

    def test_url_reopens_the_same_storage(self, storage: Storage) -> None:
        """A storage opened from ``url`` sees the same data."""
        storage.put("reopen/k", b"v")
        other = self.reopen(storage)
        try:
            assert other.get("reopen/k") == b"v"
            assert other.list("reopen/") == ["reopen/k"]
            assert other.url == storage.url
        finally:
            other.close()

    def test_another_process_reopening_the_url_sees_the_data(self, storage: Storage) -> None:
        """Another process opening ``url`` reads our data, and we read its writes."""
        url = self.require_other_processes(storage)
        storage.put("reopen/from-parent", b"parent")
        [seen] = _processes.run_in_processes(
            _processes.reopen_and_exchange,
            [(url, "reopen/from-parent", "reopen/from-child", b"child")],
            timeout=self.process_timeout,
        )
        assert seen == b"parent"
        assert storage.get("reopen/from-child") == b"child"
