"""The storage contract suite's base: sizes, the ``storage`` fixture and helpers.

:class:`~durableflow.testing.contract.StorageContract` is made of the checks of
:mod:`durableflow.testing._contract_semantics` (what one handle sees) and
:mod:`durableflow.testing._contract_sharing` (handles, threads and processes at once), both
built on :class:`ContractBase`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pytest

from durableflow.storage.base import Storage
from durableflow.storage.urls import open_storage

__all__ = ["ContractBase", "MiB", "in_threads"]

T = TypeVar("T")
MiB = 1024 * 1024


def in_threads(count: int, target: Callable[[int], T]) -> list[T]:
    """Run ``target(0..count-1)`` on ``count`` threads at once; re-raise the first failure."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(target, range(count)))


class ContractBase:
    """What every part of the contract suite uses: the sizes, the ``storage`` fixture, helpers.

    Subclass :class:`~durableflow.testing.contract.StorageContract`, not this class.
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
