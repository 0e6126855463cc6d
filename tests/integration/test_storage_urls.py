"""Storage URLs: typos are refused, and read-only opening creates nothing (issue 10, 1-2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from durableflow import Client, workflow
from durableflow.errors import StorageURLError
from durableflow.storage.filesystem import FileStorage
from durableflow.storage.memory import MemoryStorage
from durableflow.storage.sqlite import SQLiteStorage
from durableflow.storage.urls import SHAPES, open_storage


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory, to see what a typo would have created there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:/x.db", SHAPES["sqlite"]),
        ("sqlite:x.db", SHAPES["sqlite"]),
        ("sqlite://x.db", SHAPES["sqlite"]),
        ("sqlite:////x.db", SHAPES["sqlite"]),  # SQLAlchemy's absolute form: not guessed
        ("s3:/bucket", SHAPES["s3"]),
        ("s3:bucket", SHAPES["s3"]),
        ("file:/x", SHAPES["file"]),
        ("file://x", SHAPES["file"]),
        ("FILE:relative", SHAPES["file"]),
        ("memory:", SHAPES["memory"]),
        ("memory:/x", SHAPES["memory"]),
    ],
)
def test_a_known_scheme_with_the_wrong_slashes_is_refused(
    in_tmp: Path, url: str, expected: str
) -> None:
    with pytest.raises(StorageURLError, match="malformed") as info:
        open_storage(url)
    assert expected in str(info.value)
    assert all(shape in str(info.value) for shape in SHAPES.values())
    assert list(in_tmp.iterdir()) == []  # no ./sqlite: directory


@pytest.mark.parametrize("url", ["slqite:///x.db", "fiel:///x", "s4://bucket", "data:x", "c:x"])
def test_an_unknown_scheme_is_refused_with_the_list_of_schemes(in_tmp: Path, url: str) -> None:
    with pytest.raises(StorageURLError, match="unknown storage scheme") as info:
        open_storage(url)
    assert all(shape in str(info.value) for shape in SHAPES.values())
    assert f"./{url}" in str(info.value)  # how to say it is a path
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize("path", ["./a:b", "dir/a:b", "./sqlite:/x.db", "a b", "_x:y"])
def test_a_relative_path_with_a_colon_later_stays_a_path(in_tmp: Path, path: str) -> None:
    storage = open_storage(path)
    assert isinstance(storage, FileStorage)
    assert storage.root == (in_tmp / path).resolve()


def test_well_formed_urls_of_every_scheme_open(tmp_path: Path) -> None:
    assert isinstance(open_storage(f"file://{tmp_path}/f"), FileStorage)
    assert isinstance(open_storage(f"file://localhost{tmp_path}/f"), FileStorage)
    assert isinstance(open_storage(f"sqlite://{tmp_path}/s.db?fsync=false"), SQLiteStorage)
    assert isinstance(open_storage("memory://"), MemoryStorage)
    assert isinstance(open_storage("Memory://named-x"), MemoryStorage)


# -- read-only opening: create=False --------------------------------------------------------


def test_read_only_opening_of_a_missing_directory_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "some" / "typo"
    for spec in (str(typo), f"file://{typo}"):
        with pytest.raises(StorageURLError, match=f"no durableflow storage at {typo}"):
            open_storage(spec, create=False)
    assert list(tmp_path.iterdir()) == []


def test_read_only_opening_of_a_missing_sqlite_file_names_the_absolute_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nonexistent-dir" / "x" / "wf.db"
    with pytest.raises(StorageURLError, match=f"no durableflow storage at {path}") as info:
        open_storage(f"sqlite://{path}", create=False)
    assert "absolute" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_read_only_opening_refuses_a_file_that_is_not_a_durableflow_database(
    tmp_path: Path,
) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    with pytest.raises(StorageURLError, match="not a durableflow database"):
        open_storage(f"sqlite://{other}", create=False)
    assert other.read_bytes() == b""  # left as it was


def test_read_only_opening_of_memory_needs_a_store_of_that_name() -> None:
    with pytest.raises(StorageURLError, match="no durableflow storage at memory://nobody"):
        open_storage("memory://nobody", create=False)
    with pytest.raises(StorageURLError, match="no durableflow storage at memory://"):
        open_storage("memory://", create=False)
    written = open_storage("memory://ro-test")
    assert open_storage("memory://ro-test", create=False) is written


@workflow.task
def one() -> int:
    return 1


def test_read_only_opening_reads_what_a_writer_stored(storage_url: str) -> None:
    with Client(storage_url) as writer:
        writer.run(one.bind(), workflow_id="w")
    reader_storage = open_storage(storage_url, create=False)
    with Client(reader_storage) as reader:
        assert reader.get_output("w") == 1


def test_read_only_opening_needs_no_write_access(tmp_path: Path) -> None:
    root = tmp_path / "store"
    FileStorage(root).put("k", b"v")
    os.chmod(root, 0o555)
    try:
        if os.access(root, os.W_OK):
            pytest.skip("running as a user that writes anywhere (root)")
        with pytest.raises(StorageURLError, match="not writable"):
            open_storage(str(root))
        assert open_storage(str(root), create=False).get("k") == b"v"
    finally:
        os.chmod(root, 0o755)
