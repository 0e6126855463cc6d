"""Durable virtual actors: keyed state with one writer at a time (Ray 1.x's, finished).

::

    from durableflow.actors import virtual_actor, get_actor

    @virtual_actor
    class Counter:
        def __init__(self, start):
            self.value = start
        def incr(self, n=1):
            self.value += n
            return self.value
        @virtual_actor.readonly
        def get(self):
            return self.value

    c = Counter.get_or_create("visits", 0)
    c.incr.run(5)

The modules: :mod:`.api` (the decorator, classes, handles, methods), :mod:`.manage` (get, list,
delete, upgrade, inspect; the workers' drain), :mod:`.runtime` (the call protocol: submit,
drain, commit) over :mod:`.calls` (the callers' futures and driver) and :mod:`.reading` (the
committed state, readonly calls), :mod:`.body` (running a method's body, here or as a Ray task
by :mod:`durableflow.ray.actors`), :mod:`.draining` (the workers' mailbox drain),
:mod:`.registry` and :mod:`.drivers` (this process's runtimes and threads), :mod:`.store` and
:mod:`._layout` (storage keys and values), :mod:`.records` (plain data, state and result
codecs), :mod:`.environment` (the class and environment recorded and checked), :mod:`.errors`.
"""

from durableflow.actors.api import ActorClass, ActorHandle, ActorMethod, readonly, virtual_actor
from durableflow.actors.errors import (
    ActorCallError,
    ActorDefinitionError,
    ActorExistsError,
    ActorNotFoundError,
)
from durableflow.actors.manage import (
    actor_calls,
    actor_info,
    delete_actor,
    drain_mailboxes,
    get_actor,
    list_actors,
    upgrade_actor,
)

__all__ = [
    "ActorCallError",
    "ActorClass",
    "ActorDefinitionError",
    "ActorExistsError",
    "ActorHandle",
    "ActorMethod",
    "ActorNotFoundError",
    "actor_calls",
    "actor_info",
    "delete_actor",
    "drain_mailboxes",
    "get_actor",
    "list_actors",
    "readonly",
    "upgrade_actor",
    "virtual_actor",
]
