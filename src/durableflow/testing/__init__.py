"""The public test kit: the storage contract suite and a fault-injecting storage.

- :class:`StorageContract` — subclass it to check a storage backend (needs pytest).
- :class:`FaultyStorage` — wrap a storage to fail, hang or kill the process on chosen operations.
- :mod:`durableflow.testing.s3server` — start SeaweedFS or moto on 127.0.0.1 for S3 tests.

``StorageContract`` is imported on first use, so ``FaultyStorage`` works without pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from durableflow.testing.faults import OPERATIONS, Fault, FaultyStorage, kill_this_process

if TYPE_CHECKING:
    from durableflow.testing.contract import StorageContract

__all__ = ["OPERATIONS", "Fault", "FaultyStorage", "StorageContract", "kill_this_process"]


def __getattr__(name: str) -> Any:
    if name == "StorageContract":
        from durableflow.testing.contract import StorageContract

        return StorageContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
