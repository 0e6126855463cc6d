"""ActorStore: the keys of :mod:`._layout` to and from typed values.

Envelopes (pickled values) go through the storage's serializer, bound to their key, so with
a signing key a call or an outcome copied under another actor or another number is refused like
a tampered one. Headers (method, times, ok) read without unpickling anything, so listings and
``actor calls`` need none of the user's modules.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from typing import Any

from durableflow.actors import _layout as keys
from durableflow.errors import SerializationError
from durableflow.model.ownership import LeaseRecord
from durableflow.storage.base import Storage
from durableflow.storage.serializer import Serializer

__all__ = ["ActorLeases", "ActorStore", "Outcome", "Record"]


@dataclasses.dataclass(frozen=True)
class Record:
    """An actor record as read: its header, and its raw bytes (for compare-and-swap)."""

    header: dict[str, Any]
    raw: bytes


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A committed call: header, its result (or exception) pickled, the state after it."""

    seq: int
    header: dict[str, Any]
    value: bytes
    """The result pickled when ``header["ok"]``, else the exception pickled."""
    state: bytes | None
    """The state after the call, pickled; None once compacted away (an older call)."""


class ActorStore:
    """Typed access to the actors of one storage.

    Args:
        storage: where the bytes go.
        serializer: envelopes (checksums, optional key-bound signatures).
    """

    def __init__(self, storage: Storage, serializer: Serializer) -> None:
        self.storage = storage
        self.serializer = serializer

    def _load(self, raw: bytes, key: str, what: str) -> tuple[dict[str, Any], Any]:
        return self.serializer.loads_with_header(raw, what=what, key=key)

    # --- the actor record ---------------------------------------------------------------------
    def read_record(self, actor_id: str) -> Record | None:
        """The actor record's header and bytes, without unpickling its class; None if absent."""
        key = keys.actor_key(actor_id)
        raw = self.storage.get(key)
        if raw is None:
            return None
        header, _ = self.serializer.unwrap(raw, what=f"record of actor {actor_id!r}", key=key)
        return Record(header, raw)

    def record_parts(self, actor_id: str, record: Record) -> tuple[bytes, bytes]:
        """The pickled class and the pickled initial state of ``record`` (still pickled)."""
        key = keys.actor_key(actor_id)
        _, (cls, state0) = self._load(record.raw, key, f"record of actor {actor_id!r}")
        return cls, state0

    def load_class(self, actor_id: str, record: Record) -> Any:
        """The class stored in ``record`` (an actor class; imported if stored by reference).

        Raises:
            SerializationError: it does not load here (its module is missing, say).
        """
        cls, _ = self.record_parts(actor_id, record)
        try:
            return pickle.loads(cls)
        except Exception as err:
            raise SerializationError(
                f"the class of actor {actor_id!r} ({record.header.get('class_path')}) does not "
                f"load here: {type(err).__name__}: {err}",
                workflow_id=actor_id,
            ) from err

    def _record_bytes(
        self, actor_id: str, header: dict[str, Any], cls: bytes, state0: bytes
    ) -> bytes:
        return self.serializer.dumps((cls, state0), header, key=keys.actor_key(actor_id))

    def create_record(
        self, actor_id: str, header: dict[str, Any], cls: bytes, state0: bytes
    ) -> bool:
        """Store a new actor record create-only; False if the id is taken."""
        data = self._record_bytes(actor_id, header, cls, state0)
        return self.storage.create(keys.actor_key(actor_id), data)

    def swap_record(
        self, actor_id: str, old: Record, header: dict[str, Any], cls: bytes, state0: bytes
    ) -> bool:
        """Replace the actor record if it is still ``old``; False if it changed meanwhile."""
        data = self._record_bytes(actor_id, header, cls, state0)
        return self.storage.swap(keys.actor_key(actor_id), old.raw, data)

    # --- index and mailbox --------------------------------------------------------------------
    def add_to_index(self, actor_id: str) -> None:
        """List the actor (idempotent)."""
        with self.storage.volatile():
            self.storage.put(keys.index_key(actor_id), b"")

    def indexed(self, actor_id: str) -> bool:
        """Whether the actor is listed."""
        return self.storage.get(keys.index_key(actor_id)) is not None

    def actor_ids(self) -> list[str]:
        """Ids of the listed actors, sorted."""
        prefix = keys.index_prefix()
        return [key[len(prefix) :] for key in self.storage.list(prefix)]

    def mark_mailbox(self, actor_id: str) -> None:
        """Mark the actor as having pending calls (workers drain marked actors)."""
        with self.storage.volatile():
            self.storage.put(keys.mailbox_key(actor_id), b"")

    def clear_mailbox(self, actor_id: str) -> None:
        """Remove the actor's mailbox marker."""
        with self.storage.volatile():
            self.storage.delete(keys.mailbox_key(actor_id))

    def marked(self) -> list[str]:
        """Ids of the actors whose mailbox is marked, sorted."""
        prefix = keys.mailbox_prefix()
        return [key[len(prefix) :] for key in self.storage.list(prefix)]

    # --- calls --------------------------------------------------------------------------------
    def create_call(
        self, actor_id: str, seq: int, header: dict[str, Any], args: tuple[Any, ...], kwargs: Any
    ) -> bool:
        """Store call ``seq`` create-only; False if that number is taken."""
        key = keys.call_key(actor_id, seq)
        data = self.serializer.dumps((args, kwargs), header, key=key)
        return self.storage.create(key, data)

    def call_exists(self, actor_id: str, seq: int) -> bool:
        """Whether call ``seq`` is stored."""
        return self.storage.get(keys.call_key(actor_id, seq)) is not None

    def read_call(
        self, actor_id: str, seq: int
    ) -> tuple[dict[str, Any], tuple[tuple[Any, ...], dict[str, Any]]] | None:
        """Call ``seq``: header and ``(args, kwargs)``; None if not stored."""
        key = keys.call_key(actor_id, seq)
        raw = self.storage.get(key)
        if raw is None:
            return None
        header, payload = self._load(raw, key, f"call {seq} of actor {actor_id!r}")
        return header, payload

    def call_header(self, actor_id: str, seq: int) -> dict[str, Any] | None:
        """Call ``seq``'s header (nothing unpickled); None if not stored."""
        key = keys.call_key(actor_id, seq)
        raw = self.storage.get(key)
        if raw is None:
            return None
        return self.serializer.unwrap(raw, what=f"call {seq} of actor {actor_id!r}", key=key)[0]

    def call_numbers(self, actor_id: str) -> list[int]:
        """Numbers of every stored call, sorted."""
        return _numbers(self.storage.list(keys.calls_prefix(actor_id)))

    # --- outcomes -----------------------------------------------------------------------------
    def create_outcome(
        self, actor_id: str, seq: int, header: dict[str, Any], value: bytes, state: bytes
    ) -> bool:
        """Commit call ``seq`` create-only: its outcome and the state after it, in one value."""
        key = keys.done_key(actor_id, seq)
        data = self.serializer.dumps((value, state), header, key=key)
        return self.storage.create(key, data)

    def read_outcome(self, actor_id: str, seq: int) -> Outcome | None:
        """The committed outcome of call ``seq``; None if it is not committed."""
        key = keys.done_key(actor_id, seq)
        raw = self.storage.get(key)
        if raw is None:
            return None
        header, (value, state) = self._load(raw, key, f"outcome of call {seq} of {actor_id!r}")
        return Outcome(seq, header, value, state)

    def outcome_header(self, actor_id: str, seq: int) -> dict[str, Any] | None:
        """The header of call ``seq``'s outcome (nothing unpickled); None if not committed."""
        key = keys.done_key(actor_id, seq)
        raw = self.storage.get(key)
        if raw is None:
            return None
        what = f"outcome of call {seq} of {actor_id!r}"
        return self.serializer.unwrap(raw, what=what, key=key)[0]

    def strip_outcome(self, actor_id: str, seq: int) -> None:
        """Drop the state from the committed outcome ``seq`` (compaction; the result stays)."""
        outcome = self.read_outcome(actor_id, seq)
        if outcome is None or outcome.state is None:
            return
        key = keys.done_key(actor_id, seq)
        header = {**outcome.header, "state": False}
        self.storage.put(key, self.serializer.dumps((outcome.value, None), header, key=key))

    def done_numbers(self, actor_id: str) -> list[int]:
        """Numbers of every committed call, sorted."""
        return _numbers(self.storage.list(keys.done_prefix(actor_id)))

    # --- head ---------------------------------------------------------------------------------
    def read_head(self, actor_id: str) -> int:
        """The hint of the last committed call (0 when none or unreadable)."""
        raw = self.storage.get(keys.head_key(actor_id))
        if raw is None:
            return 0
        try:
            seq = json.loads(raw)["seq"]
        except (ValueError, KeyError, TypeError):
            return 0
        return seq if isinstance(seq, int) and seq >= 0 else 0

    def write_head(self, actor_id: str, seq: int) -> None:
        """Move the hint (a power cut may lose it: readers probe past it)."""
        with self.storage.volatile():
            self.storage.put(keys.head_key(actor_id), json.dumps({"seq": seq}).encode())

    # --- deleting -----------------------------------------------------------------------------
    def delete_actor(self, actor_id: str) -> None:
        """Remove the index entry, the record, the calls and outcomes, the marker, the lease."""
        self.storage.delete(keys.index_key(actor_id))
        self.storage.delete(keys.actor_key(actor_id))
        prefix = keys.actor_prefix(actor_id)
        lease = keys.lease_key(actor_id)
        for key in self.storage.list(prefix):
            if key != lease:
                self.storage.delete(key)
        self.storage.delete(keys.mailbox_key(actor_id))


class ActorLeases:
    """The actors' lease keys as a :class:`~durableflow.runtime.ownership.RecordStore`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def read(self, name: str) -> tuple[LeaseRecord | None, bytes | None]:
        """The record and its raw bytes; (None, raw) if garbled."""
        raw = self.storage.get(keys.lease_key(name))
        if raw is None:
            return None, None
        try:
            return LeaseRecord.from_bytes(raw), raw
        except (ValueError, KeyError, TypeError):
            return None, raw

    def create(self, name: str, record: LeaseRecord) -> bool:
        """Store ``record`` create-only."""
        with self.storage.volatile():
            return self.storage.create(keys.lease_key(name), record.to_bytes())

    def swap(self, name: str, old: bytes, record: LeaseRecord) -> bool:
        """Replace the bytes ``old`` with ``record``."""
        with self.storage.volatile():
            return self.storage.swap(keys.lease_key(name), old, record.to_bytes())

    def delete(self, name: str) -> None:
        """Remove the lease."""
        with self.storage.volatile():
            self.storage.delete(keys.lease_key(name))


def _numbers(found: list[str]) -> list[int]:
    out = [seq for seq in map(keys.seq_of, found) if seq is not None]
    return sorted(out)
