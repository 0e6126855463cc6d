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
