"""This process's actor runtimes, one per (Client, actor), and their lease keeper per Client.

A Client on the Ray runner gets runtimes whose calls the cluster's coordinator applies
(``RayActorRuntime`` of :mod:`durableflow.ray.actors`, imported by name when first used, as the
Ray runner itself is); every other Client gets :class:`~durableflow.actors.runtime.ActorRuntime`.
"""

from __future__ import annotations

import importlib
import threading
import weakref
from typing import TYPE_CHECKING, Any

from durableflow.actors.runtime import ActorRuntime
from durableflow.actors.store import ActorLeases
from durableflow.model.ownership import LeaseRecord
from durableflow.runtime.ownership import OwnershipKeeper

if TYPE_CHECKING:
    from durableflow.client import Client

__all__ = ["RAY_RUNTIME", "forget_runtime", "keeper_for", "runtime_for"]

RAY_RUNTIME = "durableflow.ray.actors"
"""The module of the runtime of actors on the Ray runner (``RayActorRuntime``)."""


class _ClientActors:
    """What one Client's actors share in this process: the lease keeper and the runtimes."""

    def __init__(self, client: Client) -> None:
        self.keeper: OwnershipKeeper[LeaseRecord] = OwnershipKeeper(
            ActorLeases(client.storage), LeaseRecord, client.lease_ttl, what="actor lease"
        )
        self.runtimes: dict[str, ActorRuntime] = {}
        self.lock = threading.Lock()


_registry: weakref.WeakKeyDictionary[Any, _ClientActors] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _shared(client: Client) -> _ClientActors:
    with _registry_lock:
        shared = _registry.get(client)
        if shared is None:
            shared = _registry[client] = _ClientActors(client)
        return shared


def keeper_for(client: Client) -> OwnershipKeeper[LeaseRecord]:
    """The keeper of this process's actor leases on ``client``'s storage."""
    return _shared(client).keeper


def runtime_for(client: Client, actor_id: str, actor_class: Any) -> ActorRuntime:
    """This process's runtime of ``actor_id`` on ``client`` (made on first use).

    ``actor_class`` (an :class:`~durableflow.actors.api.ActorClass`) is the code calls run
    with; a later call with another class (after an upgrade) replaces it.
    """
    shared = _shared(client)
    with shared.lock:
        runtime = shared.runtimes.get(actor_id)
        if runtime is None:
            runtime = shared.runtimes[actor_id] = _runtime_class(client)(
                client, actor_id, actor_class, shared.keeper
            )
        elif actor_class is not None:
            runtime.actor_class = actor_class
        return runtime


def _runtime_class(client: Client) -> type[ActorRuntime]:
    if client.runner.name == "ray":
        found: type[ActorRuntime] = importlib.import_module(RAY_RUNTIME).RayActorRuntime
        return found
    return ActorRuntime


def forget_runtime(client: Client, actor_id: str) -> None:
    """Drop this process's runtime of ``actor_id`` (after a delete)."""
    shared = _shared(client)
    with shared.lock:
        shared.runtimes.pop(actor_id, None)
