"""The worker's background prune by the storage's retention policy.

Every ``prune_every`` seconds (of ``clock``; the first time at its first scan), if the storage
has a retention policy (``durableflow retention set``), the worker applies it once in a
background thread at a bounded rate (``prune_rate`` deletes per second, so that workflows keep
starting and the storage is not flooded); a failed prune is logged and retried at the next
period, never stops the worker. Shutdown does not wait for a prune: a delete it cuts short
leaves a tombstone that the next prune finishes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from durableflow.client import Client
    from durableflow.runtime.retention import PruneResult

__all__ = ["PRUNE_EVERY", "PRUNE_RATE", "BackgroundPruner"]

log = logging.getLogger("durableflow.worker")

PRUNE_EVERY = 300.0
"""Default seconds between two background prunes."""
PRUNE_RATE = 20.0
"""Deletes per second at most in a background prune."""


class BackgroundPruner:
    """Applies a Client's stored retention policy once per period, in a background thread.

    Args:
        client: the Client whose storage is pruned.
        clock: the time that periods and ages are measured on.
        every: seconds of ``clock`` between two prunes (0: never).
        rate: deletes per second at most in a prune.
    """

    def __init__(
        self, client: Client, clock: Callable[[], float], every: float, rate: float
    ) -> None:
        if every < 0 or rate <= 0:
            raise ValueError(
                f"prune_every must be 0 or more and prune_rate positive, got {every!r} and {rate!r}"
            )
        self.client = client
        self.clock = clock
        self.every = every
        self.rate = rate
        self._lock = threading.Lock()
        self._next_prune: float | None = None
        self._pruner: threading.Thread | None = None

    def maybe_start(self) -> None:
        """Start a background prune if one is due and none runs."""
        if not self.every:
            return
        now = self.clock()
        with self._lock:
            if self._next_prune is not None and now < self._next_prune:
                return
            if self._pruner is not None and self._pruner.is_alive():
                return  # a slow prune: the next one starts once it is over
            self._next_prune = now + self.every
            self._pruner = threading.Thread(
                target=self.prune_once, args=(now,), name="durableflow-prune", daemon=True
            )
            self._pruner.start()

    def prune_once(self, now: float | None = None) -> PruneResult | None:
        """Apply the stored retention policy once at ``rate``; never raises.

        Args:
            now: the time ages are measured at (default: ``clock``).

        Returns:
            What was deleted, or None when there is no policy or the prune failed (logged).
        """
        try:
            if self.client.get_retention().is_empty:
                return None
            result = self.client.prune(rate=self.rate, now=self.clock() if now is None else now)
        except Exception as err:  # the storage is down, a garbled policy: try next period
            log.warning(
                "background prune failed, retrying in %gs: %s: %s",
                self.every,
                type(err).__name__,
                err,
            )
            return None
        if result.selected or result.finished or result.skipped:
            log.info("background prune: %s", result.summary())
        return result

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background prune running now (if any); False on timeout."""
        with self._lock:
            pruner = self._pruner
        if pruner is None:
            return True
        pruner.join(timeout)
        return not pruner.is_alive()
