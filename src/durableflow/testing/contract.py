"""The storage contract: one backend-agnostic test class that every backend subclasses.

::

    from durableflow.testing import StorageContract

    class TestMyStorage(StorageContract):
        def make_storage(self, tmp_path):
            return MyStorage(tmp_path / "data")     # a fresh, empty storage per test

A subclass may instead override the ``storage`` fixture (to use other fixtures, say), and may
lower the size attributes (:class:`~durableflow.testing._contract_base.ContractBase`) for a slow
backend. Tests that reopen the storage in another process skip, with a reason, for
``memory://``, which lives in one process.
"""

from __future__ import annotations

from durableflow.testing._contract_base import MiB as MiB
from durableflow.testing._contract_semantics import (
    ILLEGAL_KEYS,
    UNUSUAL_KEYS,
    SingleHandleChecks,
)
from durableflow.testing._contract_sharing import SharedAccessChecks

__all__ = ["ILLEGAL_KEYS", "UNUSUAL_KEYS", "StorageContract"]


class StorageContract(SingleHandleChecks, SharedAccessChecks):
    """The promises of :class:`~durableflow.storage.base.Storage`, as tests.

    Subclass it as ``Test...`` and implement :meth:`make_storage` (or override the
    ``storage`` fixture). The class attributes size the tests (see
    :class:`~durableflow.testing._contract_base.ContractBase`). The checks come in two parts:
    what one handle sees (:class:`~durableflow.testing._contract_semantics.SingleHandleChecks`)
    and handles, threads and processes at once
    (:class:`~durableflow.testing._contract_sharing.SharedAccessChecks`).
    """
