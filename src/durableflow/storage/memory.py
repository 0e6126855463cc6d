"""In-process storage for tests and for measuring the engine alone (``memory://``)."""

from __future__ import annotations

import threading
from urllib.parse import SplitResult

from durableflow.errors import StorageURLError
from durableflow.storage.base import Storage, check_key

__all__ = ["MemoryStorage"]

# memory://name gives the same store to every Client of the process that names it.
_NAMED: dict[str, MemoryStorage] = {}
_NAMED_LOCK = threading.Lock()


class MemoryStorage(Storage):
    """A dict behind a lock. Values vanish with the process."""

    def __init__(self, name: str = "") -> None:
        self._name = name
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, parts: SplitResult, *, create: bool = True) -> MemoryStorage:
        """Open ``memory://`` (a new store) or ``memory://name`` (shared in this process).

        ``create`` False opens only a named store this process already has: an unnamed one
        is always new, so there is never anything to read in it.

        Raises:
            StorageURLError: ``create`` False and no such store exists.
        """
        name = (parts.netloc + parts.path).strip("/")
        with _NAMED_LOCK:
            if not create and name not in _NAMED:
                what = "an unnamed memory storage is always new and empty"
                if name:
                    what = f"this process has no memory storage named {name!r}"
                raise StorageURLError(f"no durableflow storage at memory://{name}: {what}")
            if not name:
                return cls()
            if name not in _NAMED:
                _NAMED[name] = cls(name)
            return _NAMED[name]

    @property
    def url(self) -> str:
        return f"memory://{self._name}"

    @property
    def ordered(self) -> bool:
        """True: nothing outlives the process, so no write outlives an earlier one."""
        return True

    def get(self, key: str) -> bytes | None:
        return self._data.get(check_key(key))

    def put(self, key: str, data: bytes) -> None:
        check_key(key)
        with self._lock:
            self._data[key] = bytes(data)

    def create(self, key: str, data: bytes) -> bool:
        check_key(key)
        with self._lock:
            if key in self._data:
                return False
            self._data[key] = bytes(data)
            return True

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        check_key(key)
        with self._lock:
            if self._data.get(key) != expected:
                return False
            self._data[key] = bytes(data)
            return True

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._data.pop(key, None)

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            keys = list(self._data)
        return sorted(k for k in keys if k.startswith(prefix))

    def delete_prefix(self, prefix: str) -> None:
        with self._lock:
            for key in [k for k in self._data if k.startswith(prefix)]:
                del self._data[key]
