"""The default Client behind the facade's module functions.

It is created on first use, closed by ``shutdown``, chosen again by ``init``.
Its storage comes from ``init``, else the environment (``$DURABLEFLOW_STORAGE``, then
``$RAY_WORKFLOW_STORAGE``), else the default storage. Its runner is ``"auto"``
(:mod:`durableflow.client.runners`): Ray DAGs go to the cluster when Ray is initialized and no
executor was chosen, as ``ray.workflow`` did.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from durableflow import telemetry
from durableflow.client import Client
from durableflow.compat import check_limit
from durableflow.executors.base import Executor
from durableflow.storage.base import Storage

__all__ = ["client", "init", "is_initialized", "shutdown"]

_client: Client | None = None
_lock = threading.Lock()


def init(
    storage: str | os.PathLike[str] | Storage | None = None,
    *,
    max_running_workflows: int | None = None,
    max_pending_workflows: int | None = None,
    executor: str | Executor | None = None,
    signing_key: bytes | str | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    **client_options: Any,
) -> Client:
    """Create the default Client (optional: every call below does it on first use).

    Calling it again with the same (or no) settings returns the same Client.
    ``tracer_provider`` / ``meter_provider``: OpenTelemetry providers durableflow traces and
    measures with instead of the global ones (:func:`durableflow.telemetry.configure`).

    Raises:
        TypeError: a limit that is not an int.
        ValueError: a limit out of range (``max_running_workflows`` < 1,
            ``max_pending_workflows`` < 0), or already initialized with a different storage or
            different limits (``workflow.shutdown()`` first).
    """
    global _client
    check_limit("max_running_workflows", max_running_workflows, 1)
    check_limit("max_pending_workflows", max_pending_workflows, 0)
    if tracer_provider is not None or meter_provider is not None:
        telemetry.configure(tracer_provider=tracer_provider, meter_provider=meter_provider)
    with _lock:
        if _client is not None:
            if storage is not None and not _same_storage(_client, storage):
                raise ValueError(
                    f"durableflow is already initialized with storage {_client.storage.url}; "
                    "call workflow.shutdown() first to use another"
                )
            for name, wanted in (
                ("max_running_workflows", max_running_workflows),
                ("max_pending_workflows", max_pending_workflows),
            ):
                current = getattr(_client, name)
                if wanted is not None and wanted != current:
                    raise ValueError(
                        f"durableflow is already initialized with {name}={current}; "
                        "call workflow.shutdown() first to change it"
                    )
            return _client
        client_options.setdefault("runner", "auto")
        _client = Client(
            storage,
            executor=executor,
            max_running_workflows=max_running_workflows,
            max_pending_workflows=max_pending_workflows,
            signing_key=signing_key,
            **client_options,
        )
        return _client


def _same_storage(current: Client, storage: str | os.PathLike[str] | Storage) -> bool:
    if isinstance(storage, Storage):
        return storage is current.storage
    text = os.fspath(storage)
    if "://" not in text:
        text = "file://" + os.path.abspath(os.path.expanduser(text))
    return text.rstrip("/") == current.storage.url.split("?")[0].rstrip("/")


def is_initialized() -> bool:
    """Whether the default Client exists."""
    return _client is not None


def client() -> Client:
    """The default Client, created on first use."""
    return _client or init()


def shutdown(wait: bool = True) -> None:
    """Close the default Client: ``wait`` for its workflows, or leave them RESUMABLE."""
    global _client
    with _lock:
        current, _client = _client, None
    if current is not None:
        current.close(wait=wait)
