"""ScheduleStore: schedule records to and from storage keys.

A schedule is three keys (see :mod:`durableflow.storage.layout`): its DAG (written first), its
record (written last: a schedule exists once its record does), and its firing state, changed
only by compare-and-swap. (The workers' slots are :mod:`durableflow.storage.slots`.)
"""

from __future__ import annotations

from typing import Any

from durableflow.errors import CheckpointCorruptError, SerializationError
from durableflow.model.schedule import ScheduleRecord, ScheduleState
from durableflow.storage import layout
from durableflow.storage.base import Storage
from durableflow.storage.serializer import Serializer

__all__ = ["ScheduleStore"]


class ScheduleStore:
    """Typed access to stored schedules.

    Args:
        storage: where the bytes go.
        serializer: how the DAG (or DAG factory) becomes bytes.
    """

    def __init__(self, storage: Storage, serializer: Serializer | None = None) -> None:
        self.storage = storage
        self.serializer = serializer or Serializer()

    def encode_dag(self, name: str, dag: Any) -> bytes:
        """The stored form of a schedule's DAG or factory.

        Raises:
            SerializationError: it cannot be pickled (naming the schedule).
        """
        try:
            return self.serializer.dumps(dag, {"schedule": name}, key=layout.schedule_dag_key(name))
        except SerializationError as err:
            raise SerializationError(
                f"schedule {name!r}: its DAG cannot be pickled: {err}"
            ) from None

    def add(self, record: ScheduleRecord, dag_data: bytes, *, replace: bool) -> bool:
        """Store a schedule: the DAG, then the record (create-only unless ``replace``).

        Returns:
            False if ``replace`` is off and a schedule of that name exists (nothing changed).
        """
        key = layout.schedule_key(record.name)
        if not replace and self.storage.get(key) is not None:
            return False
        self.storage.put(layout.schedule_dag_key(record.name), dag_data)
        if replace:
            self.storage.put(key, record.to_bytes())
            return True
        return self.storage.create(key, record.to_bytes())

    def write(self, record: ScheduleRecord) -> None:
        """Overwrite a schedule's record (pause, resume)."""
        self.storage.put(layout.schedule_key(record.name), record.to_bytes())

    def read(self, name: str) -> ScheduleRecord | None:
        """The schedule's record, or None."""
        key = layout.schedule_key(name)
        raw = self.storage.get(key)
        if raw is None:
            return None
        try:
            return ScheduleRecord.from_bytes(raw)
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointCorruptError(
                f"schedule {name!r} is corrupt ({key}): {err}", key=key
            ) from err

    def read_dag(self, name: str) -> Any:
        """The schedule's DAG or factory, unpickled (imports its functions).

        Raises:
            KeyError: no DAG stored.
        """
        key = layout.schedule_dag_key(name)
        raw = self.storage.get(key)
        if raw is None:
            raise KeyError(name)
        what = f"DAG of schedule {name!r} ({key})"
        return self.serializer.loads_with_header(raw, what=what, key=key)[1]

    def names(self) -> list[str]:
        """Names of the stored schedules, sorted."""
        prefix = layout.schedules_prefix()
        out = set()
        for key in self.storage.list(prefix):
            name, _, rest = key[len(prefix) :].partition("/")
            if rest == "spec":
                out.add(name)
        return sorted(out)

    def delete(self, name: str) -> None:
        """Remove a schedule: its record first (it stops firing), then the rest."""
        self.storage.delete(layout.schedule_key(name))
        self.storage.delete_prefix(layout.schedule_prefix(name))

    def read_state(self, name: str) -> tuple[ScheduleState | None, bytes | None]:
        """The firing state and its raw bytes (for compare-and-swap); (None, None) if absent."""
        raw = self.storage.get(layout.schedule_state_key(name))
        if raw is None:
            return None, None
        try:
            return ScheduleState.from_bytes(raw), raw
        except (ValueError, KeyError, TypeError):
            return None, raw

    def create_state(self, name: str, state: ScheduleState) -> bool:
        """Store the first state; False if one exists."""
        return self.storage.create(layout.schedule_state_key(name), state.to_bytes())

    def swap_state(self, name: str, old: bytes, state: ScheduleState) -> bool:
        """Replace the state if it still is ``old``."""
        return self.storage.swap(layout.schedule_state_key(name), old, state.to_bytes())
