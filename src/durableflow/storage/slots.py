"""SlotStore: the workers' running slots (``slots/<n>``) to and from storage keys.

A slot is a lease-like record (:class:`~durableflow.model.ownership.SlotRecord`), claimed
create-only and renewed by compare-and-swap; :mod:`durableflow.runtime.slots` has the protocol.
"""

from __future__ import annotations

from durableflow.model.ownership import SlotRecord
from durableflow.storage import layout
from durableflow.storage.base import Storage

__all__ = ["SlotStore"]


class SlotStore:
    """Typed access to the workers' running slots."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def read(self, slot: int) -> tuple[SlotRecord | None, bytes | None]:
        """The slot's record and raw bytes; (None, None) if free, (None, raw) if garbled."""
        raw = self.storage.get(layout.slot_key(slot))
        if raw is None:
            return None, None
        try:
            return SlotRecord.from_bytes(raw), raw
        except (ValueError, KeyError, TypeError):
            return None, raw

    def create(self, slot: int, record: SlotRecord) -> bool:
        """Claim a free slot; False if it is taken."""
        return self.storage.create(layout.slot_key(slot), record.to_bytes())

    def swap(self, slot: int, old: bytes, record: SlotRecord) -> bool:
        """Replace the slot's record if it still is ``old``."""
        return self.storage.swap(layout.slot_key(slot), old, record.to_bytes())

    def delete(self, slot: int) -> None:
        """Free the slot."""
        self.storage.delete(layout.slot_key(slot))

    def taken(self) -> list[int]:
        """Numbers of the slots that have a record (live or not)."""
        prefix = layout.slots_prefix()
        return sorted(
            int(k[len(prefix) :]) for k in self.storage.list(prefix) if k[len(prefix) :].isdigit()
        )
