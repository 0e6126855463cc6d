"""The storage contract, part one: what a single handle sees.

Part of :class:`~durableflow.testing.contract.StorageContract`: values (get, put, put_many,
durability scopes), create, swap, list, delete and keys, each checked on one handle in one
thread. Races between threads, handles and processes are
:mod:`durableflow.testing._contract_sharing`.
"""

from __future__ import annotations

import contextlib
import os

import pytest

from durableflow.storage.base import Storage
from durableflow.testing._contract_base import ContractBase

__all__ = ["ILLEGAL_KEYS", "UNUSUAL_KEYS", "SingleHandleChecks"]

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


class SingleHandleChecks(ContractBase):
    """The promises of one storage handle used by one thread."""

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
