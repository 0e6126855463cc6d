"""``Storage.list_children``: one level of ``list``, on every local backend.

The status index lists its folders with it, so it must agree with ``list`` exactly: the same
names, sorted, deeper keys left out, nothing outside the folder.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from durableflow.storage.base import Storage
from durableflow.storage.urls import open_storage

BACKENDS = ("memory", "file", "file-nofsync", "sqlite")


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    url = {
        "memory": "memory://",
        "file": f"file://{tmp_path / 'store'}",
        "file-nofsync": f"file://{tmp_path / 'store'}?fsync=false",
        "sqlite": f"sqlite://{tmp_path / 'store.db'}",
    }[request.param]
    opened = open_storage(url)
    yield opened
    opened.close()


def _one_level(storage: Storage, folder: str) -> list[str]:
    names = [key[len(folder) :] for key in storage.list(folder)]
    return [name for name in names if "/" not in name]


def test_children_are_the_values_one_level_down_sorted(storage: Storage) -> None:
    storage.put_many(
        [
            ("v1/index/DONE/b", b""),
            ("v1/index/DONE/a", b""),
            ("v1/index/DONE/c", b"x"),
            ("v1/index/DONE/sub/deeper", b""),  # a folder inside: not a child value
            ("v1/index/DONEX/z", b""),  # a sibling folder sharing the name's start
            ("v1/index/DON", b""),
        ]
    )
    assert storage.list_children("v1/index/DONE/") == ["a", "b", "c"]
    assert storage.list_children("v1/index/") == ["DON"]
    assert storage.list_children("v1/index/NONE/") == []
    assert storage.list_children("nothing/here/") == []


def test_children_agree_with_list_on_random_keys(storage: Storage) -> None:
    rng = random.Random(17)
    keys = set()
    for _ in range(300):  # folders a*, b*; values x*, y* (a file cannot also be a folder)
        folders = [rng.choice("ab") + str(rng.randrange(5)) for _ in range(rng.randint(0, 2))]
        keys.add("/".join([*folders, rng.choice("xy") + str(rng.randrange(30))]))
    storage.put_many((key, b"") for key in keys)
    folders = {key.rsplit("/", 1)[0] + "/" for key in keys if "/" in key}
    for folder in sorted(folders):
        assert storage.list_children(folder) == _one_level(storage, folder), folder


def test_a_deleted_child_is_gone(storage: Storage) -> None:
    storage.put("f/x", b"")
    storage.put("f/y", b"")
    storage.delete("f/x")
    assert storage.list_children("f/") == ["y"]


def test_a_folder_must_end_with_a_slash(storage: Storage) -> None:
    with pytest.raises(ValueError, match="ending in '/'"):
        storage.list_children("v1/index/DONE")


def test_a_folder_that_no_key_can_be_in_lists_nothing(storage: Storage) -> None:
    storage.put("a/b", b"")
    for folder in ("../", "a/../", "a//", "./a/"):
        assert storage.list_children(folder) == []


def test_file_children_skip_temporary_files_and_subdirectories(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path / 'store'}")
    storage.put_many([("f/a", b""), ("f/b", b"1")])
    folder = tmp_path / "store" / "f"
    (folder / ".tmp-123-a").write_bytes(b"half written")
    assert storage.list_children("f/") == ["a", "b"]  # no subdirectory: os.listdir
    os.mkdir(folder / "empty-dir")  # a subdirectory, no key under it: the scandir path
    storage.put("f/sub/c", b"")
    assert storage.list_children("f/") == ["a", "b"]
    assert storage.list("f/") == ["f/a", "f/b", "f/sub/c"]
