"""The storage contract, part two: handles, threads and processes at once.

Part of :class:`~durableflow.testing.contract.StorageContract`: atomic values under concurrent
readers, one winner among racing ``create`` and ``swap`` calls (threads and processes), a
delete never undone by a racing swap, and other handles and processes reopening ``url``.
Tests that need another process skip, with a reason, for ``memory://``. The children run the
functions of :mod:`durableflow.testing._processes`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from durableflow.storage.base import Storage
from durableflow.testing import _processes
from durableflow.testing._contract_base import ContractBase, in_threads

__all__ = ["SharedAccessChecks"]


class SharedAccessChecks(ContractBase):
    """The promises of a storage shared by threads, handles and processes."""

    # -- threads racing one key ---------------------------------------------------------------

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

    def test_create_has_exactly_one_winner_among_threads(self, storage: Storage) -> None:
        """Of ``race_threads`` threads creating one key at once, exactly one wins."""
        for round_ in range(self.race_rounds):
            key = f"race/create/{round_}"
            barrier = threading.Barrier(self.race_threads)

            def racer(index: int, key: str = key, barrier: threading.Barrier = barrier) -> bool:
                barrier.wait(30)
                return storage.create(key, f"thread {index}".encode())

            won = in_threads(self.race_threads, racer)
            assert won.count(True) == 1, f"round {round_}: {won.count(True)} winners"
            assert storage.get(key) == f"thread {won.index(True)}".encode()

    def test_swap_has_exactly_one_winner_among_threads(self, storage: Storage) -> None:
        """Of ``race_threads`` threads swapping one value at once, exactly one wins."""
        for round_ in range(self.race_rounds):
            key = f"race/swap/{round_}"
            storage.put(key, b"start")
            barrier = threading.Barrier(self.race_threads)

            def racer(index: int, key: str = key, barrier: threading.Barrier = barrier) -> bool:
                barrier.wait(30)
                return storage.swap(key, b"start", f"thread {index}".encode())

            won = in_threads(self.race_threads, racer)
            assert won.count(True) == 1, f"round {round_}: {won.count(True)} winners"
            assert storage.get(key) == f"thread {won.index(True)}".encode()

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

    # -- other handles and processes ----------------------------------------------------------

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
