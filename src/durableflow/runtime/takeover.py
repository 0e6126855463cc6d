"""Claim step 3 of the ownership protocol: may a record's holder be taken over?

See :mod:`durableflow.runtime.ownership` (Claim, step 3) for the rule. **Same machine**
(machine id, boot id and PID namespace all equal ours): the holder is dead if it abandoned the
record, its process is gone or its pid was reused, or its expiry on ``CLOCK_BOOTTIME`` has
passed (:func:`~durableflow.runtime.liveness.holder_dead_here`). **Another machine** (or an
unknown one: an older or garbled record): wall clocks of two machines are never compared; the
holder is dead only once *this process* has seen the exact bytes unchanged for the holder's
``ttl`` on its own ``CLOCK_BOOTTIME``. :class:`HolderJudge` keeps that observation table.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from durableflow.model.ownership import LeaseRecord
from durableflow.runtime.liveness import Identity, boottime, holder_dead_here

__all__ = ["HolderJudge"]

_MAX_OBSERVED = 10_000
"""Observations kept; past it the table is cleared (a bound, not a correctness matter)."""


class HolderJudge:
    """Judges holders of ownership records for one keeper.

    Args:
        identity: this process's machine identity.
        ttl: the keeper's ttl, for records that carry none.
    """

    def __init__(self, identity: Identity, ttl: float) -> None:
        self.identity = identity
        self.ttl = ttl
        self._seen: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def forget(self, name: str) -> None:
        """Drop the observation of ``name`` (the keeper holds it now)."""
        with self._lock:
            self._seen.pop(name, None)

    def observed(self, name: str, raw: bytes) -> float:
        """Seconds this judge has seen ``raw`` unchanged at ``name`` (0: first sight)."""
        now = boottime()
        with self._lock:
            seen = self._seen.get(name)
            if seen is None or seen[0] != raw:
                if len(self._seen) > _MAX_OBSERVED:
                    self._seen.clear()  # observing restarts
                self._seen[name] = (raw, now)
                return 0.0
            return now - seen[1]

    def _needed(self, record: LeaseRecord | None) -> float:
        return record.ttl if record is not None and record.ttl > 0 else self.ttl

    def holder_dead(self, name: str, record: LeaseRecord | None, raw: bytes) -> bool:
        """Without waiting: may ``raw`` (parsed: ``record``) at ``name`` be taken over now?"""
        if record is not None and self.identity.matches(record):
            return holder_dead_here(record)
        return self.observed(name, raw) >= self._needed(record)

    def wait_observed(
        self,
        name: str,
        record: LeaseRecord | None,
        raw: bytes,
        read: Callable[[str], bytes | None],
    ) -> bool:
        """Poll until ``raw`` was seen unchanged for the holder's ttl; False if it changed.

        ``read`` returns the bytes at a name now (None if absent).
        """
        needed = self._needed(record)
        pause = min(max(needed / 20, 0.01), 1.0)
        while True:
            observed = self.observed(name, raw)
            if observed >= needed:
                return True
            time.sleep(min(pause, needed - observed + 0.001))
            if read(name) != raw:
                return False
