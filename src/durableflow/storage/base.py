"""The storage plugin interface: bytes in, bytes out, by '/'-separated key.

A backend moves opaque bytes. It knows nothing of workflows; key names live in
:mod:`durableflow.storage.layout` and encodings in :mod:`durableflow.storage.serializer`.

Every backend keeps the same promises, checked by the contract suite in
:mod:`durableflow.testing`:

1. ``put`` is atomic: a reader sees the old bytes or the new bytes, never a part.
2. ``create`` is create-only: of many concurrent calls for one key exactly one returns True.
3. ``swap`` is compare-and-swap: it replaces the value only if it still equals ``expected``.
4. ``list`` under a prefix is complete and sorted.
5. ``url`` reopens the same storage from another process (for all but ``memory://``).

Durability: a write is durable when it returns (it survives a power cut where the backend
promises that, e.g. file storage with fsync on). Two optional scopes let a caller relax that
where correctness allows, and let a backend share the cost: :meth:`Storage.batch` (the writes
of a block are durable together when it exits) and :meth:`Storage.volatile` (the writes of a
block need not survive a power cut). Both default to doing nothing special. An *ordered*
backend (:attr:`Storage.ordered`) keeps a prefix of the writes on a power cut; :meth:`Storage.sync`
makes every write so far durable there.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import re
from collections.abc import Iterable

__all__ = ["MAX_KEY_LENGTH", "Storage", "check_key", "folder_start", "matches_no_key"]

MAX_KEY_LENGTH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The rules below as one pattern: segments without control characters, none empty or dotted.
_SEGMENT = r"[^/.\x00-\x1f\x7f][^/\x00-\x1f\x7f]*"
_LEGAL_KEY = re.compile(f"{_SEGMENT}(?:/{_SEGMENT})*")


def check_key(key: str) -> str:
    """Return ``key`` if it is a legal storage key, else raise ValueError.

    A key is '/'-separated, with no empty, '.' or '..' segment, no segment starting with '.'
    (backends keep their temporary files there), and no control characters.
    """
    if len(key) <= MAX_KEY_LENGTH and _LEGAL_KEY.fullmatch(key):
        return key
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"storage key must be 1..{MAX_KEY_LENGTH} characters: {key!r}")
    for part in key.split("/"):
        if not part or part.startswith("."):
            raise ValueError(f"illegal storage key segment {part!r} in {key!r}")
    if _CONTROL.search(key):
        raise ValueError(f"control character in storage key {key!r}")
    return key


def matches_no_key(prefix: str) -> bool:
    """True if no legal key starts with ``prefix`` (a complete segment is empty or dotted).

    Backends answer such a listing with nothing, so that ``../x/`` never escapes a root and
    ``a//`` never matches what a server folds into ``a/``.
    """
    if "/" not in prefix:
        return False
    try:
        check_key(prefix.rpartition("/")[0])
    except ValueError:
        return True
    return False


def folder_start(folder: str) -> int:
    """``len(folder)`` for ``list_children``; ValueError unless it ends in ``/``."""
    if not folder.endswith("/"):
        raise ValueError(f"list_children takes a folder ending in '/', got {folder!r}")
    return len(folder)


class Storage(abc.ABC):
    """A key-value store of bytes; subclass it to plug in a new backend.

    Implementations raise :class:`~durableflow.errors.StorageError` subclasses for failures
    (unreachable, full, refused), never a backend-specific exception.
    """

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The URL that reopens this storage (credentials never included)."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes | None:
        """Return the bytes stored at ``key``, or None if there are none."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically, replacing any old value."""

    @abc.abstractmethod
    def create(self, key: str, data: bytes) -> bool:
        """Store ``data`` at ``key`` only if nothing is there; True if this call stored it."""

    @abc.abstractmethod
    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        """Replace the value at ``key`` with ``data`` if it equals ``expected``; True if so."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``, sorted."""

    def list_children(self, folder: str) -> builtins.list[str]:
        """The names of the values directly in ``folder``, sorted: one level of :meth:`list`.

        ``folder`` is a prefix ending in ``/``; a key ``folder + name`` is listed (as ``name``)
        when ``name`` has no ``/``, deeper keys are not. What the status index's listings use:
        backends override it when they can list one level without building every full key
        (a directory's names, a range scan returning suffixes).

        Raises:
            ValueError: ``folder`` does not end with ``/``.
        """
        start = folder_start(folder)
        names = [key[start:] for key in self.list(folder)]
        return [name for name in names if "/" not in name]

    def delete_prefix(self, prefix: str) -> None:
        """Remove every key that starts with ``prefix``."""
        for key in self.list(prefix):
            self.delete(key)

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store several values; each is atomic, the group is not.

        Backends override this to share the cost of durability (one fsync of a directory,
        one transaction) between values written together.
        """
        for key, data in items:
            self.put(key, data)

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Make the writes this thread does inside the block durable together, at its end.

        Each write stays atomic and visible at once to this thread, and to every reader at the
        latest when the block ends (SQLite makes the block one transaction); what changes is
        when it is durable: all of them when the block exits normally (not each on its return).
        Backends use it to share one sync (a directory fsync, a commit) between values written
        together. A block that raises keeps its writes, unsynced.
        Nested scopes join the outermost one. Default: every write is durable on its own.
        """
        return contextlib.nullcontext()

    def volatile(self) -> contextlib.AbstractContextManager[None]:
        """Let the writes this thread does inside the block skip power-cut durability.

        They stay atomic, visible at once, and they survive a killed process (they reach the
        operating system); only a power cut may undo them. For values whose loss in a power cut
        is harmless: a lease (every runner on the machine died with it), a marker that readers
        repair. Nested scopes join the outermost one. Default: the same writes as outside.
        """
        return contextlib.nullcontext()

    @property
    def ordered(self) -> bool:
        """Whether a power cut keeps a prefix of the writes, in the order they were made.

        True for a backend whose writes reach stable storage in order (one append-only log,
        as SQLite's) or are durable each on its return outside :meth:`volatile` (nothing to
        lose out of order). There, a writer may leave writes unsynced (:meth:`volatile`) and
        make them durable later with :meth:`sync`, knowing that no later write survives a
        power cut without them. False (the default): writes left unsynced may survive in any
        order, so protocols sync each step before the next.
        """
        return False

    def sync(self) -> None:  # noqa: B027 - optional hook: nothing is left unsynced by default
        """Make every write made so far durable, the volatile ones included (ordered backends).

        Callers use it where :attr:`ordered` is True, before something that must not survive a
        power cut without the writes before it (a task that starts after a checkpoint). A
        backend that is not ordered does nothing here.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections and handles; the storage is not used afterwards."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
