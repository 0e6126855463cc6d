"""The public face of virtual actors: ``@virtual_actor``, actor classes, handles, methods.

Ray 1.x's shape (``Counter.get_or_create("id", 0)``, ``counter.incr.run(5)``,
``counter.value.run_async()``, ``get_actor("id")``, ``@virtual_actor.readonly``) plus what Ray
never finished: ``send`` (a durable mailbox drained by workers) and ``create``; the management
calls (``get_actor``, ``list_actors``, ``delete_actor``, ``upgrade_actor``) are :mod:`.manage`.
Every call takes the process's default Client (the one behind ``durableflow.workflow``) unless
a class is bound to another with :meth:`ActorClass.using` or a ``client=`` is given.

Create (:meth:`ActorClass.get_or_create`, :meth:`ActorClass.create`):

1. read the actor record; found: ``create`` raises ActorExistsError, ``get_or_create`` checks
   the environment (the Client's policy) and goes to 4;
2. run ``__init__`` here, once, and pickle the state it made;
3. store the record create-only: the class (by reference when importable by its name, by value
   otherwise), the initial state, the environment. Another creator won: go to 1 (its
   arguments are the actor's; ``get_or_create`` with other arguments returns it unchanged);
4. list the actor in the index (idempotent: a creator killed between 3 and 4 is repaired by
   the next opener).
"""

from __future__ import annotations

import importlib
import sys
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

import cloudpickle

from durableflow.actors.environment import check_actor_environment, class_path, record_environment
from durableflow.actors.errors import ActorDefinitionError, ActorExistsError
from durableflow.actors.records import dump_state, state_of
from durableflow.actors.registry import runtime_for
from durableflow.actors.runtime import ActorRuntime
from durableflow.actors.store import ActorStore
from durableflow.errors import InvalidWorkflowIdError
from durableflow.model.ids import validate_workflow_id

if TYPE_CHECKING:
    from durableflow.client import Client

__all__ = [
    "ActorClass",
    "ActorHandle",
    "ActorMethod",
    "default_client",
    "importable",
    "pickle_class",
    "readonly",
    "store_of",
    "validate_actor_id",
    "virtual_actor",
]

_READONLY = "__durableflow_readonly__"
MAX_ACTOR_ID_BYTES = 200
"""Longest actor id in UTF-8 bytes: ``actor.<id>.call.<n>`` must stay a valid workflow id."""


def validate_actor_id(actor_id: object) -> str:
    """Return ``actor_id`` if it is a valid actor id, else raise InvalidWorkflowIdError."""
    value = validate_workflow_id(actor_id)
    if len(value.encode()) > MAX_ACTOR_ID_BYTES:
        raise InvalidWorkflowIdError(
            f"actor id must be at most {MAX_ACTOR_ID_BYTES} bytes in UTF-8 (its calls' "
            f"sub-workflows are named actor.<id>.call.<n>): {value[:40]!r}...",
            workflow_id=value,
        )
    return value


def default_client() -> Client:
    """The process's default Client (the facade's), made on first use."""
    from durableflow.facade.default import client

    return client()


def readonly(method: Any) -> Any:
    """Mark a method readonly: it runs on the last committed state and writes nothing.

    Raises:
        ActorDefinitionError: ``method`` is not a plain function.
    """
    if not isinstance(method, types.FunctionType):
        raise ActorDefinitionError(
            f"@virtual_actor.readonly marks a method (a function), not {type(method).__name__}"
        )
    setattr(method, _READONLY, True)
    return method


class _VirtualActorDecorator:
    """``@virtual_actor`` over a class; ``@virtual_actor.readonly`` over its methods."""

    readonly = staticmethod(readonly)

    @overload
    def __call__(self, cls: type, /) -> ActorClass: ...

    @overload
    def __call__(self, cls: None = None, /, **ray_options: Any) -> Callable[[type], ActorClass]: ...

    def __call__(
        self, cls: type | None = None, /, **ray_options: Any
    ) -> ActorClass | Callable[[type], ActorClass]:
        """``@virtual_actor``, or ``@virtual_actor(num_cpus=..., ...)`` with Ray options."""
        if cls is None:
            return lambda cls: ActorClass(cls, options=ray_options)
        return ActorClass(cls, options=ray_options)

    def __repr__(self) -> str:
        return "durableflow.actors.virtual_actor"


virtual_actor = _VirtualActorDecorator()
"""Decorate a class to make it a virtual actor's: durable state, one writer at a time."""


class ActorClass:
    """A class decorated with ``@virtual_actor``: makes and finds its actors.

    Args:
        cls: the decorated class.
        client: the Client its actors live on; None: the default Client.
        options: the Ray options its calls run with on Ray (``num_cpus``, ``num_gpus``,
            ``resources``, ``runtime_env``...; ignored elsewhere).

    Raises:
        ActorDefinitionError: ``cls`` is not a class.
    """

    def __init__(
        self, cls: type, client: Client | None = None, options: dict[str, Any] | None = None
    ) -> None:
        if not isinstance(cls, type):
            raise ActorDefinitionError(
                f"@virtual_actor decorates a class, not {type(cls).__name__}"
            )
        self.cls = cls
        self._client = client
        self.ray_options: dict[str, Any] = dict(options or {})
        """The Ray options each call's body runs with on Ray (a Ray task's options)."""
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__
        self.readonly_methods = frozenset(
            name for name in dir(cls) if getattr(getattr(cls, name, None), _READONLY, False)
        )
        """Names of the methods marked ``@virtual_actor.readonly``."""

    @property
    def client(self) -> Client:
        """The Client this class's actors live on."""
        return self._client if self._client is not None else default_client()

    def using(self, client: Client) -> ActorClass:
        """This class with its actors on ``client`` instead of the default Client."""
        return ActorClass(self.cls, client, self.ray_options)

    def options(self, **ray_options: Any) -> ActorClass:
        """This class with these Ray options added (``Counter.options(num_cpus=2)``)."""
        return ActorClass(self.cls, self._client, {**self.ray_options, **ray_options})

    def get_or_create(self, actor_id: str, *args: Any, **kwargs: Any) -> ActorHandle:
        """The actor ``actor_id``, created with ``cls(*args, **kwargs)`` if it is not stored.

        An existing actor is returned as stored: other constructor arguments are ignored.

        Raises:
            InvalidWorkflowIdError: a bad id.
            EnvironmentMismatchError: the class or environment differs from the recorded one
                and the Client's ``env_policy`` is ``error``.
        """
        return _open(self, actor_id, args, kwargs, create_only=False)

    def create(self, actor_id: str, *args: Any, **kwargs: Any) -> ActorHandle:
        """A new actor ``actor_id``, made with ``cls(*args, **kwargs)``.

        Raises:
            ActorExistsError: the id is stored already.
        """
        return _open(self, actor_id, args, kwargs, create_only=True)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Refuse: actors are made with ``get_or_create`` or ``create``."""
        raise ActorDefinitionError(
            f"a virtual actor class is not instantiated directly: use "
            f"{self.__name__}.get_or_create(actor_id, ...) or .create(actor_id, ...)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # By reference when the decorated name imports to this class (the importing process
        # runs its current code); by value otherwise (a class defined in __main__).
        if importable(self.cls):
            name = (self.cls.__module__, self.cls.__qualname__)
            return (_import_actor_class, (*name, self.ray_options))
        return (ActorClass, (self.cls, None, self.ray_options))

    def __repr__(self) -> str:
        return f"<virtual actor class {class_path(self.cls)}>"


def _lookup(module: str, qualname: str) -> Any:
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def importable(cls: type) -> bool:
    """Whether ``module.qualname`` names the actor class of ``cls`` (so it pickles by name)."""
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return False
    found = _lookup(cls.__module__, cls.__qualname__)
    return isinstance(found, ActorClass) and found.cls is cls


def _import_actor_class(
    module: str, qualname: str, options: dict[str, Any] | None = None
) -> ActorClass:
    importlib.import_module(module)
    found = _lookup(module, qualname)
    if not isinstance(found, ActorClass):
        raise ActorDefinitionError(f"{module}:{qualname} is not a @virtual_actor class")
    if options is not None and options != found.ray_options:
        return ActorClass(found.cls, None, options)  # made with .options(...)
    return found


def _open(
    actor_class: ActorClass,
    actor_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    create_only: bool,
) -> ActorHandle:
    """Create or find an actor (Create 1-4 in the module docstring)."""
    actor_id = validate_actor_id(actor_id)
    client = actor_class.client
    store = ActorStore(client.storage, client.store.serializer)
    record = store.read_record(actor_id)  # 1
    if record is None:
        instance = actor_class.cls(*args, **kwargs)  # 2
        state0 = dump_state(state_of(instance))
        header = {
            "actor_id": actor_id,
            "class_name": actor_class.cls.__qualname__,
            "class_path": class_path(actor_class.cls),
            "created": time.time(),
            "version": 1,
            "upgraded": None,
            "environment": record_environment(client.store, actor_class.cls),
        }
        if store.create_record(actor_id, header, pickle_class(actor_class), state0):  # 3
            store.add_to_index(actor_id)  # 4
            return ActorHandle(runtime_for(client, actor_id, actor_class))
        record = store.read_record(actor_id)
        if record is None:  # created and deleted at once by others: start over
            return _open(actor_class, actor_id, args, kwargs, create_only=create_only)
        if create_only:
            raise ActorExistsError(
                f"virtual actor {actor_id!r} was just created by another caller",
                workflow_id=actor_id,
            )
    elif create_only:
        raise ActorExistsError(f"virtual actor {actor_id!r} exists already", workflow_id=actor_id)
    check_actor_environment(
        client.store,
        actor_id,
        record.header.get("environment") or {},
        actor_class.cls,
        client.env_policy,
    )
    if not store.indexed(actor_id):  # 4: a creator was killed between 3 and 4
        store.add_to_index(actor_id)
    return ActorHandle(runtime_for(client, actor_id, actor_class))


def pickle_class(actor_class: ActorClass) -> bytes:
    """The actor class pickled for its record (by name when importable, else by value)."""
    return bytes(cloudpickle.dumps(actor_class))


def _reopen(actor_id: str) -> ActorHandle:
    """A handle unpickled: the actor reopened by id on the default Client."""
    from durableflow.actors.manage import get_actor

    return get_actor(actor_id)


class ActorHandle:
    """A stored actor: its methods as attributes (``handle.incr.run(1)``)."""

    def __init__(self, runtime: ActorRuntime) -> None:
        self._runtime = runtime

    @property
    def actor_id(self) -> str:
        """The actor's id."""
        return self._runtime.actor_id

    def __getattr__(self, name: str) -> ActorMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        cls = self._runtime.actor_class.cls
        if not callable(getattr(cls, name, None)):
            raise AttributeError(f"virtual actor class {cls.__qualname__} has no method {name!r}")
        return ActorMethod(self._runtime, name, name in self._runtime.actor_class.readonly_methods)

    def ready(self) -> Any:
        """A future already resolved to True (Ray 1.x's ``ray.get(actor.ready())``).

        A ``ray.ObjectRef`` on the Ray runner, like ``run_async``'s.
        """
        return self._runtime.ready()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self.actor_id,))

    def __repr__(self) -> str:
        return f"<virtual actor {self.actor_id!r} of {class_path(self._runtime.actor_class.cls)}>"


class ActorMethod:
    """One method of an actor: ``run``, ``run_async`` and (mutating methods) ``send``."""

    def __init__(self, runtime: ActorRuntime, name: str, is_readonly: bool) -> None:
        self._runtime = runtime
        self.name = name
        self.readonly = is_readonly

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method and return its result (a mutating call commits its new state).

        Raises:
            ActorCallError: the method raised (its exception is the cause).
        """
        if self.readonly:
            return self._runtime.read(self.name, args, kwargs)
        return self._runtime.call(self.name, args, kwargs)

    def run_async(self, *args: Any, **kwargs: Any) -> Any:
        """Submit the call now (after this thread's earlier calls); a future of its result.

        The future is what ``workflow.run_async`` returns: a ``concurrent.futures.Future``, or
        a ``ray.ObjectRef`` when the actor's Client runs workflows on Ray (its runner).
        """
        if self.readonly:
            return self._runtime.read_async(self.name, args, kwargs)
        return self._runtime.call_async(self.name, args, kwargs)

    def send(self, *args: Any, **kwargs: Any) -> int:
        """Store the call in the actor's mailbox and return its number, without waiting.

        A caller of the actor or a ``durableflow worker`` applies it.

        Raises:
            ActorDefinitionError: the method is readonly (nothing to apply later).
        """
        if self.readonly:
            raise ActorDefinitionError(
                f"{self.name} is readonly: send() stores a call to apply later; use run()"
            )
        return self._runtime.submit(self.name, args, kwargs, "send")

    def __repr__(self) -> str:
        kind = "readonly method" if self.readonly else "method"
        return f"<{kind} {self.name} of virtual actor {self._runtime.actor_id!r}>"


def store_of(client: Client) -> ActorStore:
    """The actor store of ``client``'s storage, with its serializer."""
    return ActorStore(client.storage, client.store.serializer)
