"""Open a storage from a URL, a path, or a ready ``Storage`` instance.

Backends are plugins named by URL scheme; each is imported only when its scheme is used, so
``import durableflow`` needs none of their optional dependencies.
"""

from __future__ import annotations

import importlib
import os
from typing import Any
from urllib.parse import urlsplit

from durableflow.errors import StorageURLError
from durableflow.storage.base import Storage

__all__ = ["SCHEMES", "open_storage", "register_scheme"]

# scheme -> "module:Class"; the class has a ``from_url(SplitResult)`` classmethod.
SCHEMES: dict[str, str] = {
    "file": "durableflow.storage.filesystem:FileStorage",
    "memory": "durableflow.storage.memory:MemoryStorage",
    "s3": "durableflow.storage.s3:S3Storage",
    "sqlite": "durableflow.storage.sqlite:SQLiteStorage",
}


def register_scheme(scheme: str, target: str) -> None:
    """Make ``scheme://...`` URLs open with ``target`` ("module:Class")."""
    SCHEMES[scheme.lower()] = target


def open_storage(spec: str | os.PathLike[str] | Storage) -> Storage:
    """Return the storage named by ``spec``.

    Args:
        spec: a ``Storage`` instance (returned as is), a filesystem path, or a URL
            such as ``file:///data/wf``, ``s3://bucket/prefix?endpoint_url=...``,
            ``sqlite:///path/wf.db`` or ``memory://``.

    Raises:
        StorageURLError: unknown scheme, unusable path or bad parameter.
    """
    if isinstance(spec, Storage):
        return spec
    text = os.fspath(spec)
    if not isinstance(text, str) or not text.strip():
        raise StorageURLError(f"storage must be a URL, a path or a Storage, got {spec!r}")
    if "://" not in text:
        from durableflow.storage.filesystem import FileStorage

        return FileStorage(text)
    parts = urlsplit(text)
    storage = _load(parts.scheme.lower()).from_url(parts)
    if not isinstance(storage, Storage):
        raise StorageURLError(f"storage scheme {parts.scheme!r} did not open a Storage")
    return storage


def _load(scheme: str) -> Any:
    target = SCHEMES.get(scheme)
    if target is None:
        known = ", ".join(sorted(SCHEMES))
        raise StorageURLError(f"unknown storage scheme {scheme!r}; known schemes: {known}")
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    if not isinstance(cls, type):
        raise StorageURLError(f"storage scheme {scheme!r} maps to {target!r}, which is not a class")
    return cls
