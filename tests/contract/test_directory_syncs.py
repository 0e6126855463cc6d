"""Group commit of a batch's directory fsyncs: all of them, side by side, before returning."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from durableflow.storage import _filelocks
from durableflow.storage._filelocks import DirectorySyncs
from durableflow.storage.filesystem import FileStorage


def test_sync_all_runs_the_fsyncs_at_the_same_time_and_waits_for_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = [tmp_path / name for name in ("a", "b", "c")]
    for directory in dirs:
        directory.mkdir()
    together = threading.Barrier(3, timeout=10)  # broken unless all three run at once
    done: list[Path] = []
    lock = threading.Lock()
    real = DirectorySyncs.sync

    def sync(self: DirectorySyncs, directory: Path) -> None:
        together.wait()
        real(self, directory)
        with lock:
            done.append(directory)

    monkeypatch.setattr(DirectorySyncs, "sync", sync)
    DirectorySyncs().sync_all(dirs)
    assert sorted(done) == sorted(dirs)  # every one finished before sync_all returned


def test_a_failed_fsync_is_raised_after_the_others_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = [tmp_path / name for name in ("a", "b", "c")]
    for directory in dirs:
        directory.mkdir()
    done: list[Path] = []

    def sync(self: DirectorySyncs, directory: Path) -> None:
        if directory.name == "b":
            raise OSError(5, "I/O error")
        done.append(directory)

    monkeypatch.setattr(DirectorySyncs, "sync", sync)
    with pytest.raises(OSError, match="I/O error"):
        DirectorySyncs().sync_all(dirs)
    assert sorted(d.name for d in done) == ["a", "c"]


def test_a_batch_syncs_every_directory_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FileStorage(tmp_path / "store")
    asked: list[list[Path]] = []
    real = DirectorySyncs.sync_all

    def sync_all(self: DirectorySyncs, directories: list[Path]) -> None:
        asked.append(list(directories))
        real(self, directories)

    monkeypatch.setattr(_filelocks.DirectorySyncs, "sync_all", sync_all)
    with storage.batch():
        storage.put("w/specs/root", b"1")
        storage.put("index/RUNNING/w", b"")
    root = tmp_path / "store"
    assert len(asked) == 1
    assert set(asked[0]) == {
        root / "w/specs",
        root / "w",
        root / "index/RUNNING",
        root / "index",
        root,
    }
    assert storage.get("w/specs/root") == b"1"
