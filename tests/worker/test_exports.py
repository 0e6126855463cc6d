"""``durableflow.worker`` is a package: its public names, pinned."""

import durableflow.worker
from durableflow.worker import _loop, _pruning


def test_worker_package_exports_the_worker_and_the_prune_defaults():
    assert durableflow.worker.__all__ == ["PRUNE_EVERY", "PRUNE_RATE", "Worker"]
    assert durableflow.worker.Worker is _loop.Worker
    assert (durableflow.worker.PRUNE_EVERY, durableflow.worker.PRUNE_RATE) == (300.0, 20.0)
    assert _pruning.PRUNE_EVERY is durableflow.worker.PRUNE_EVERY
