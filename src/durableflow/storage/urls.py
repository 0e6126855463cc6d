"""Open a storage from a URL, a path, or a ready ``Storage`` instance.

Backends are plugins named by URL scheme; each is imported only when its scheme is used, so
``import durableflow`` needs none of their optional dependencies.

What a storage spec may be:

- a path without a scheme (``/data/wf``, ``./wf``, ``~/wf``, ``./a:b``): file storage;
- ``file:///absolute/path`` (three slashes: an empty host, then the absolute path);
- ``sqlite:///absolute/path/wf.db``: three slashes, and the path is **absolute**, like
  ``file:///``: ``sqlite:///data/wf.db`` is ``/data/wf.db``. (SQLAlchemy reads three slashes as
  relative and four as absolute; durableflow does not, and refuses four slashes rather than
  guess which one was meant);
- ``s3://bucket/prefix?endpoint_url=...&region_name=...``;
- ``memory://`` or ``memory://name``.

Anything that starts like a scheme (a word, then ``:``) is a URL: an unknown scheme
(``slqite:///x``, ``fiel:///x``) or a known one with the wrong number of slashes
(``sqlite:/x.db``, ``s3:/bucket``) is refused with :class:`~durableflow.errors.StorageURLError`
listing the schemes and their shapes, instead of becoming a relative directory ``./sqlite:``.
A relative path whose first part holds a colon is written with ``./`` in front.

Opening for reading only (``create=False``): a missing directory, SQLite file or S3 bucket
raises StorageURLError "no durableflow storage at <the path or bucket tried>" and nothing is
created. Only writers create a storage.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from typing import Any
from urllib.parse import urlsplit

from durableflow.errors import StorageURLError
from durableflow.storage.base import Storage

__all__ = ["SCHEMES", "SHAPES", "open_storage", "register_scheme"]

# scheme -> "module:Class"; the class has a ``from_url(SplitResult)`` classmethod, which may
# take a keyword ``create`` (False: open an existing storage only).
SCHEMES: dict[str, str] = {
    "file": "durableflow.storage.filesystem:FileStorage",
    "memory": "durableflow.storage.memory:MemoryStorage",
    "s3": "durableflow.storage.s3:S3Storage",
    "sqlite": "durableflow.storage.sqlite:SQLiteStorage",
}

SHAPES: dict[str, str] = {
    "file": "file:///absolute/path[?fsync=false]",
    "memory": "memory://[name]",
    "s3": "s3://bucket[/prefix][?endpoint_url=...&region_name=...]",
    "sqlite": "sqlite:///absolute/path/file.db[?fsync=false]",
}
"""The expected shape of each scheme's URLs, shown when a URL is malformed."""

# What follows "scheme:" in a well-formed URL of each built-in scheme.
_RESTS: dict[str, re.Pattern[str]] = {
    "file": re.compile(r"//(localhost)?/([^/]|$)", re.IGNORECASE),
    "memory": re.compile(r"//([^/]|$)"),
    "s3": re.compile(r"//[^/]"),
    "sqlite": re.compile(r"//(localhost)?/[^/]", re.IGNORECASE),
}
_ANY_REST = re.compile(r"//")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_DRIVE = re.compile(r"[A-Za-z]:[\\/]")


def register_scheme(scheme: str, target: str, shape: str | None = None) -> None:
    """Make ``scheme://...`` URLs open with ``target`` ("module:Class").

    Args:
        scheme: the URL scheme, case-insensitive.
        target: ``"module:Class"``; the class has a ``from_url(SplitResult)`` classmethod.
        shape: how its URLs look, for error messages (default ``scheme://...``).
    """
    scheme = scheme.lower()
    SCHEMES[scheme] = target
    SHAPES[scheme] = shape or f"{scheme}://..."


def open_storage(spec: str | os.PathLike[str] | Storage, *, create: bool = True) -> Storage:
    """Return the storage named by ``spec``.

    Args:
        spec: a ``Storage`` instance (returned as is), a filesystem path, or a URL
            such as ``file:///data/wf``, ``s3://bucket/prefix?endpoint_url=...``,
            ``sqlite:///path/wf.db`` or ``memory://``.
        create: False opens an existing storage only, creating nothing (read-only commands).
            A backend registered without a ``create`` parameter opens as it always does.

    Raises:
        StorageURLError: unknown scheme, malformed URL, unusable path or bad parameter; with
            ``create`` False, "no durableflow storage at ..." when nothing is there.
    """
    if isinstance(spec, Storage):
        return spec
    text = os.fspath(spec)
    if not isinstance(text, str) or not text.strip():
        raise StorageURLError(f"storage must be a URL, a path or a Storage, got {spec!r}")
    scheme = _scheme_of(text)
    if scheme is None:
        from durableflow.storage.filesystem import FileStorage

        return FileStorage(text, create=create)
    cls = _load(scheme, text)
    parts = urlsplit(text)
    if create or not _takes_create(cls):
        storage = cls.from_url(parts)
    else:
        storage = cls.from_url(parts, create=False)
    if not isinstance(storage, Storage):
        raise StorageURLError(f"storage scheme {parts.scheme!r} did not open a Storage")
    return storage


def _scheme_of(text: str) -> str | None:
    """The scheme of ``text`` (lowercased) once its shape is checked; None for a path.

    Raises:
        StorageURLError: an unknown scheme, or a known one in the wrong shape.
    """
    match = _SCHEME.match(text)
    if match is None or (os.name == "nt" and _DRIVE.match(text)):
        return None
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    if scheme not in SCHEMES:
        raise StorageURLError(
            f"unknown storage scheme {match.group(1)!r} in {text!r}; {_known()}. A path "
            f"whose first part holds a colon is written with ./ in front: ./{text}"
        )
    if not _RESTS.get(scheme, _ANY_REST).match(rest):
        raise StorageURLError(
            f"malformed {scheme} storage URL {text!r} (wrong number of slashes?): "
            f"expected {SHAPES.get(scheme, scheme + '://...')}; {_known()}"
        )
    return scheme


def _known() -> str:
    shapes = ", ".join(SHAPES.get(name, f"{name}://...") for name in sorted(SCHEMES))
    return f"known schemes: {shapes}; or a path"


def _takes_create(cls: Any) -> bool:
    try:
        parameters = inspect.signature(cls.from_url).parameters
    except (TypeError, ValueError):
        return False
    return "create" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _load(scheme: str, text: str = "") -> Any:
    target = SCHEMES.get(scheme)
    if target is None:
        raise StorageURLError(f"unknown storage scheme {scheme!r} in {text!r}; {_known()}")
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    if not isinstance(cls, type):
        raise StorageURLError(f"storage scheme {scheme!r} maps to {target!r}, which is not a class")
    return cls
