"""The storage contract on memory:// (named stores, so the URL reopens them in-process)."""

import uuid
from pathlib import Path

from durableflow.storage.base import Storage
from durableflow.storage.memory import MemoryStorage
from durableflow.storage.urls import open_storage
from durableflow.testing import StorageContract


class TestMemoryStorage(StorageContract):
    def make_storage(self, tmp_path: Path) -> Storage:
        return open_storage(f"memory://contract-{uuid.uuid4().hex}")

    # memory:// lives in one process: the cross-process promises do not apply to it. Removed
    # here explicitly (rather than skipped) so that a skip in CI always means a missing server.
    test_create_has_exactly_one_winner_among_processes = None  # type: ignore[assignment]
    test_another_process_reopening_the_url_sees_the_data = None  # type: ignore[assignment]


def test_unnamed_memory_storages_are_separate() -> None:
    first, second = open_storage("memory://"), open_storage("memory://")
    first.put("k", b"v")
    assert second.get("k") is None
    assert isinstance(first, MemoryStorage)


def test_named_memory_storage_is_shared_in_the_process() -> None:
    name = f"memory://shared-{uuid.uuid4().hex}"
    open_storage(name).put("k", b"v")
    assert open_storage(name).get("k") == b"v"
