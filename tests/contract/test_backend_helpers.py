"""The helpers every backend shares (storage/_backend.py), through the backends that use them."""

import errno
import pickle
import shutil
import sqlite3
from pathlib import Path

import pytest

from durableflow.errors import (
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    StorageURLError,
)
from durableflow.storage._backend import (
    parse_bool_option,
    storage_error,
    translate_errors,
    url_options,
)
from durableflow.storage.filesystem import FileStorage
from durableflow.storage.sqlite import SQLiteStorage
from durableflow.storage.urls import open_storage


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[("1", True), ("TRUE", True), ("yes", True), ("on", True)],
        *[("0", False), ("False", False), ("no", False), ("OFF", False)],
    ],
)
def test_parse_bool_option_reads_the_usual_spellings(value: str, expected: bool) -> None:
    assert parse_bool_option("fsync", value) is expected


@pytest.mark.parametrize("value", ["", "maybe", "2"])
def test_parse_bool_option_refuses_anything_else(value: str) -> None:
    with pytest.raises(StorageURLError, match=f"fsync must be true or false, got {value!r}"):
        parse_bool_option("fsync", value)


def test_url_options_keeps_the_last_value_and_refuses_unknown_names() -> None:
    assert url_options("fsync=true&fsync=off", {"fsync": bool}, scheme="x") == {"fsync": "off"}
    with pytest.raises(StorageURLError, match="unknown pg storage parameter 'ssl'; known: a, b"):
        url_options("ssl=1", {"b": 1, "a": 1}, scheme="pg")


@pytest.mark.parametrize("scheme", ["file", "sqlite"])
@pytest.mark.parametrize(("option", "fsync"), [("", True), ("?fsync=off", False)])
def test_both_local_backends_read_fsync_alike(
    tmp_path: Path, scheme: str, option: str, fsync: bool
) -> None:
    storage = open_storage(f"{scheme}://{tmp_path / 'store'}{option}")
    assert storage._fsync is fsync  # type: ignore[attr-defined]
    assert storage.url.endswith("?fsync=false") is not fsync
    with pytest.raises(StorageURLError, match=r"unknown .* parameter 'sync'; known: fsync"):
        open_storage(f"{scheme}://{tmp_path / 'store'}?sync=1")
    with pytest.raises(StorageURLError, match="fsync must be true or false, got 'maybe'"):
        open_storage(f"{scheme}://{tmp_path / 'store'}?fsync=maybe")


@pytest.mark.parametrize("scheme", ["file", "sqlite"])
def test_a_pickled_storage_reopens_its_url(tmp_path: Path, scheme: str) -> None:
    storage = open_storage(f"{scheme}://{tmp_path / 'store'}?fsync=false")
    storage.put("a/b", b"value")
    copy = pickle.loads(pickle.dumps(storage))
    assert type(copy) is type(storage)
    assert copy is not storage
    assert copy.url == storage.url
    assert copy.get("a/b") == b"value"
    copy.put("a/c", b"from the copy")
    assert storage.get("a/c") == b"from the copy"


@pytest.mark.parametrize("scheme", ["file", "sqlite"])
def test_a_pickled_storage_removed_meanwhile_is_not_made_anew(tmp_path: Path, scheme: str) -> None:
    storage = open_storage(f"{scheme}://{tmp_path / 'store'}")
    data = pickle.dumps(storage)
    storage.close()
    shutil.rmtree(tmp_path / "store") if scheme == "file" else (tmp_path / "store").unlink()
    with pytest.raises(StorageURLError, match="no durableflow storage at"):
        pickle.loads(data)
    assert not (tmp_path / "store").exists()


def test_a_storage_whose_path_does_not_survive_its_url_refuses_to_reopen(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()  # what file://.../a#b would open: the '#' starts a fragment
    storage = FileStorage(tmp_path / "a#b")
    with pytest.raises(StorageURLError, match="cannot be reopened from its URL"):
        pickle.loads(pickle.dumps(storage))


def test_translate_errors_maps_the_backend_error_and_lets_storage_errors_through() -> None:
    def translate(err: OSError, action: str, key: str | None) -> StorageError:
        return storage_error(err.errno == errno.ENOSPC, action, key, "the place", err)

    with pytest.raises(StorageFullError, match=r"cannot write 'k' in the place: .*full") as full:
        with translate_errors(OSError, translate, "write", "k"):
            raise OSError(errno.ENOSPC, "full")
    assert full.value.key == "k"
    with pytest.raises(StorageUnavailableError, match=r"^cannot list in the place: .*gone$"):
        with translate_errors(OSError, translate, "list", None):
            raise OSError(errno.EIO, "gone")
    assert str(storage_error(False, "list", None, None, "gone")) == "cannot list: gone"
    original = StorageUnavailableError("as it was", key="x")
    with pytest.raises(StorageUnavailableError) as passed:
        with translate_errors((OSError, StorageError), translate, "read", "x"):
            raise original
    assert passed.value is original
    with pytest.raises(KeyError):  # not listed: not translated
        with translate_errors(OSError, translate, "read", "x"):
            raise KeyError("x")


def test_sqlite_errors_name_the_action_key_and_file(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "wf.db")
    err = storage._translate(sqlite3.OperationalError("database is locked"), "write", "k")
    assert type(err) is StorageUnavailableError
    assert str(err) == f"cannot write 'k' in {tmp_path / 'wf.db'}: database is locked"
    assert err.key == "k"


def test_file_errors_say_full_on_enospc(tmp_path: Path) -> None:
    from durableflow.storage.filesystem import _os_error

    full = _os_error(OSError(errno.ENOSPC, "No space left on device"), "k", "write")
    assert type(full) is StorageFullError and full.key == "k"
    assert "No space left" in str(full)
    assert type(_os_error(OSError(errno.EACCES, "denied"), "k", "read")) is StorageUnavailableError
    assert isinstance(FileStorage(tmp_path), FileStorage)
