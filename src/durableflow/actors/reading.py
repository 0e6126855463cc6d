"""The last committed state of an actor (Drain 2 of :mod:`.runtime`), and readonly calls.

A process caches the last (number, state) it committed or read; finding the newest commit costs
one read of ``done/<n+1>`` (absent) when nothing changed, and otherwise a jump to the head hint
and a probe forward. States compacted away are skipped by listing the outcomes.
"""

from __future__ import annotations

import threading
from typing import Any

from durableflow.actors.body import LOCAL, MethodRunner
from durableflow.actors.errors import ActorNotFoundError
from durableflow.actors.store import ActorStore

__all__ = ["CommittedState"]


class CommittedState:
    """Reads an actor's committed state; the base of its runtime.

    Args:
        store: the actor store.
        actor_id: the actor.
        actor_class: the :class:`~durableflow.actors.api.ActorClass` whose code readonly
            methods run with (None: state only).
    """

    def __init__(self, store: ActorStore, actor_id: str, actor_class: Any) -> None:
        self.store = store
        self.actor_id = actor_id
        self.actor_class = actor_class
        self._lock = threading.Lock()
        self._committed_cache: tuple[int, bytes] | None = None
        self._state0: bytes | None = None
        self.methods: MethodRunner = LOCAL
        """Where method bodies run (:mod:`.body`); readonly ones too."""

    def _not_found(self) -> ActorNotFoundError:
        return ActorNotFoundError(
            f"virtual actor {self.actor_id!r} is not stored (deleted?)", workflow_id=self.actor_id
        )

    # --- reading the committed state ------------------------------------------------------------
    def committed(self) -> tuple[int, bytes]:
        """The last committed call number and the state after it (Drain 2)."""
        with self._lock:
            cached = self._committed_cache
        seq, state = cached if cached is not None else (0, None)
        outcome = self.store.read_outcome(self.actor_id, seq + 1)
        if outcome is None and state is not None:
            return seq, state  # nothing newer than what this process saw
        if outcome is not None:
            head = self.store.read_head(self.actor_id)
            if head > seq + 1:  # jump ahead by the hint, then probe
                ahead = self.store.read_outcome(self.actor_id, head)
                if ahead is not None:
                    outcome = ahead
            last = outcome
            while outcome is not None:
                seq, last = outcome.seq, outcome
                outcome = self.store.read_outcome(self.actor_id, seq + 1)
            if last.state is None:  # compacted: only when a hint was far off; list instead
                seq, state = self._latest_by_listing()
            else:
                state = last.state
        else:
            head = self.store.read_head(self.actor_id)
            if head > 0:
                seq, state = self._latest_by_listing()
            else:
                seq, state = 0, self.initial_state()
        with self._lock:
            if self._committed_cache is None or self._committed_cache[0] <= seq:
                self._committed_cache = (seq, state)
        return seq, state

    def _latest_by_listing(self) -> tuple[int, bytes]:
        numbers = self.store.done_numbers(self.actor_id)
        for seq in reversed(numbers):
            outcome = self.store.read_outcome(self.actor_id, seq)
            if outcome is not None and outcome.state is not None:
                return seq, outcome.state
        return 0, self.initial_state()

    def initial_state(self) -> bytes:
        """The state ``__init__`` made (from the actor record)."""
        if self._state0 is None:
            record = self.store.read_record(self.actor_id)
            if record is None:
                raise self._not_found()
            _, self._state0 = self.store.record_parts(self.actor_id, record)
        return self._state0

    def read(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a readonly method on the last committed state; nothing is written."""
        seq, state = self.committed()
        name = f"actor.{self.actor_id}.{method}.read.{seq}"
        return self.methods.read(self.actor_class, method, state, args, kwargs, name)
