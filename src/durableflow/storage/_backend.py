"""What every storage backend writes the same way: URL options, pickling, error translation.

A new backend (Postgres, Redis, ...) uses these instead of copying them:

- :func:`url_options` and :func:`parse_bool_option` read a URL's query string, refusing an
  unknown parameter or a value that is not a boolean with
  :class:`~durableflow.errors.StorageURLError`;
- :class:`ReopenFromURL` pickles a storage as its URL, so a copy sent to another process (a
  process executor, a Ray task) reopens the same data instead of carrying connections, locks
  or credentials;
- :func:`translate_errors` turns a backend's own exceptions into the
  :class:`~durableflow.errors.StorageError` subclasses the engine understands, one
  ``cannot <action> <key> in <where>`` message shape for all of them.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from durableflow.errors import (
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    StorageURLError,
)

__all__ = [
    "ReopenFromURL",
    "parse_bool_option",
    "reopen",
    "storage_error",
    "translate_errors",
    "url_options",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def url_options(query: str, known: Mapping[str, object], *, scheme: str) -> dict[str, str]:
    """The parameters of a URL's query string, the last value of each.

    Args:
        query: the query string (``SplitResult.query``).
        known: the parameters the backend accepts (only its keys are used).
        scheme: the backend's name, for the error message.

    Raises:
        StorageURLError: a parameter not in ``known``.
    """
    options: dict[str, str] = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if name not in known:
            raise StorageURLError(
                f"unknown {scheme} storage parameter {name!r}; known: {', '.join(sorted(known))}"
            )
        options[name] = values[-1]
    return options


def parse_bool_option(name: str, value: str) -> bool:
    """``value`` of the URL parameter ``name`` as a boolean (1/true/yes/on, 0/false/no/off).

    Raises:
        StorageURLError: any other value, quoted as given.
    """
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise StorageURLError(f"{name} must be true or false, got {value!r}")


def reopen(cls: Any, url: str) -> Any:
    """What an unpickled :class:`ReopenFromURL` storage calls: ``cls.from_url`` of ``url``.

    The storage existed when it was pickled, so it is opened with ``create=False`` (when
    ``from_url`` takes it): a storage removed meanwhile is not silently made anew, empty.

    Raises:
        StorageURLError: nothing is there any more, or the URL opens another storage (one
            whose own URL differs: its path did not survive the URL's quoting).
    """
    parts = urlsplit(url)
    takes_create = "create" in inspect.signature(cls.from_url).parameters
    storage = cls.from_url(parts, create=False) if takes_create else cls.from_url(parts)
    if storage.url != url:
        storage.close()
        raise StorageURLError(
            f"{cls.__name__} {url!r} cannot be reopened from its URL (it opens {storage.url!r})"
        )
    return storage


class ReopenFromURL:
    """Mixin: a storage pickles as its class and ``url``, and unpickles by reopening it.

    The class needs a ``url`` property and a ``from_url(SplitResult)`` classmethod (what
    :func:`~durableflow.storage.urls.open_storage` calls), best with a ``create`` keyword (see
    :func:`reopen`). Whatever the handle holds (connections, locks, explicit credentials)
    stays behind: the copy gets its own.
    """

    url: Any  # the storage's property

    def __reduce__(self) -> tuple[Any, ...]:
        return (reopen, (type(self), self.url))


@contextlib.contextmanager
def translate_errors(
    catch: type[BaseException] | tuple[type[BaseException], ...],
    translate: Callable[[Any, str, str | None], StorageError],
    action: str,
    key: str | None,
) -> Iterator[None]:
    """Raise ``translate(err, action, key)`` from any ``catch`` error raised in the block.

    A :class:`StorageError` raised in the block passes through unchanged, even when it is
    also an instance of ``catch`` (as it is of ``OSError``: a StorageError is not one, but a
    backend may list a broad base class).

    Args:
        catch: the backend's own exception classes.
        translate: builds the StorageError (see :func:`storage_error`).
        action: what was being done ("read", "write", "delete" ...).
        key: the key (or prefix) it was done to, None for the storage as a whole.
    """
    try:
        yield
    except StorageError:
        raise
    except catch as err:
        raise translate(err, action, key) from err


def storage_error(
    full: bool, action: str, key: str | None, where: str | None, detail: object
) -> StorageError:
    """``StorageFullError`` if ``full``, else ``StorageUnavailableError``, worded alike.

    The message is ``cannot <action> '<key>' in <where>: <detail>``, without the key or the
    place when they are None; the error carries ``key``.
    """
    target = f" {key!r}" if key is not None else ""
    place = f" in {where}" if where is not None else ""
    message = f"cannot {action}{target}{place}: {detail}"
    cls = StorageFullError if full else StorageUnavailableError
    return cls(message, key=key)
