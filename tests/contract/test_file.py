"""The storage contract on a directory: fsync on (the default) and off."""

import contextlib
from pathlib import Path

import pytest

from durableflow.storage.base import Storage
from durableflow.storage.filesystem import FileStorage
from durableflow.storage.urls import open_storage
from durableflow.testing import StorageContract


class TestFileStorage(StorageContract):
    def make_storage(self, tmp_path: Path) -> Storage:
        return open_storage(f"file://{tmp_path / 'store'}")

    def test_prefix_with_dot_dot_never_touches_a_sibling_directory(
        self, storage: Storage, tmp_path: Path
    ) -> None:
        sibling = tmp_path / "sibling"
        sibling.mkdir()
        (sibling / "precious").write_bytes(b"keep me")
        assert storage.list("../sibling/") == []
        assert storage.list("x/../../sibling/") == []
        for prefix in ("../sibling/", "x/../../sibling/", "../", "/"):
            with contextlib.suppress(ValueError):
                storage.delete_prefix(prefix)
        assert (sibling / "precious").read_bytes() == b"keep me"


class TestFileStorageWithoutFsync(StorageContract):
    def make_storage(self, tmp_path: Path) -> Storage:
        storage = open_storage(f"file://{tmp_path / 'store'}?fsync=false")
        assert storage.url.endswith("?fsync=false")
        return storage


def test_a_plain_path_opens_file_storage(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "plain"))
    assert isinstance(storage, FileStorage)
    assert storage.url == f"file://{tmp_path / 'plain'}"


def test_temporary_files_are_invisible_and_left_behind_by_no_write(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "store")
    storage.put("a/b", b"1")
    assert storage.create("a/b", b"2") is False
    assert storage.list("") == ["a/b"]
    assert [p.name for p in (tmp_path / "store" / "a").iterdir()] == ["b"]


@pytest.mark.parametrize("url", ["file://host/x", "file:///x?fsync=maybe", "file:///x?color=red"])
def test_bad_file_urls_raise_storage_url_error(url: str) -> None:
    from durableflow.errors import StorageURLError

    with pytest.raises(StorageURLError):
        open_storage(url)


def test_delete_waits_for_a_swap_in_flight_and_wins(tmp_path: Path) -> None:
    """A delete during a swap's write waits for the swap, then removes its value."""
    import threading

    storage = FileStorage(tmp_path / "store")
    storage.put("lease/w", b"old")
    in_swap, resume, deleted = threading.Event(), threading.Event(), threading.Event()
    write_temp = storage._write_temp

    def paused_write_temp(target: Path, data: bytes) -> Path:
        in_swap.set()  # the swap has read and compared "old": it is about to rename
        resume.wait(30)
        return write_temp(target, data)

    storage._write_temp = paused_write_temp  # type: ignore[method-assign]
    swapper = threading.Thread(target=storage.swap, args=("lease/w", b"old", b"new"))
    swapper.start()
    assert in_swap.wait(30)
    deleter = threading.Thread(target=lambda: (storage.delete("lease/w"), deleted.set()))
    deleter.start()
    # Without the lock the delete is done at once and the swap then re-creates the key.
    assert not deleted.wait(0.5)
    resume.set()
    swapper.join(30)
    deleter.join(30)
    assert deleted.is_set()
    assert storage.get("lease/w") is None
    assert not list((tmp_path / "store" / ".locks").iterdir())  # a delete leaves no lock file


def test_swaps_and_deletes_of_one_key_from_two_processes_never_wedge(tmp_path: Path) -> None:
    """Deletes unlink the lock file while the other process waits on it: both go on."""
    import subprocess
    import sys

    root = tmp_path / "store"
    FileStorage(root)
    program = (
        "import sys\n"
        "from durableflow.storage.filesystem import FileStorage\n"
        "s = FileStorage(sys.argv[1])\n"
        "for i in range(200):\n"
        "    s.create('k', b'0')\n"
        "    s.swap('k', b'0', sys.argv[2].encode())\n"
        "    s.delete('k')\n"
    )
    children = [subprocess.Popen([sys.executable, "-c", program, str(root), name]) for name in "ab"]
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    assert FileStorage(root).get("k") is None
