"""Running a method's body: Drain 4 of :mod:`.runtime`, here or as a Ray task.

:func:`run_body` is the whole of it, a plain function of plain data (the class, the method's
name, the state, the arguments), so that it runs wherever it is shipped: in the writer's
process, or as a Ray task with the class's Ray options (:mod:`durableflow.ray.actors`) when the
writer's Client runs tasks on Ray. It writes nothing: the writer commits what it returns.
:func:`method_runner` chooses where, by the Client's executor.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any, Protocol

from durableflow.actors.records import (
    dump_error,
    dump_result,
    dump_state,
    load_state,
    restore,
    state_of,
)
from durableflow.model.dag import as_node

if TYPE_CHECKING:
    from durableflow.client import Client

__all__ = [
    "LOCAL",
    "Body",
    "LocalMethods",
    "MethodRunner",
    "method_runner",
    "read_body",
    "run_body",
]


@dataclasses.dataclass
class Body:
    """What a mutating method's body did, for the writer to commit."""

    ok: bool
    """True: it returned; False: it raised (``state`` is the state it started from)."""
    value: bytes
    """Its result or exception, pickled (empty while ``node`` is to run)."""
    state: bytes
    """The state after it, pickled."""
    error: str | None = None
    """Its exception as ``Type: message``."""
    node: Any = None
    """The DAG it returned: the call's sub-workflow, which the writer runs; None: none."""


def run_body(
    actor_class: Any, method: str, state: bytes, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Body:
    """Restore ``state`` into an instance of the class, run ``method`` on it, pickle the outcome.

    A method that raises (or whose result or new state cannot be pickled) leaves ``state``.
    """
    try:
        obj = restore(actor_class.cls, load_state(state))
        result = getattr(obj, method)(*args, **kwargs)
        node = as_node(result)
        value = dump_result(result) if node is None else b""
        return Body(True, value, dump_state(state_of(obj)), node=node)
    except Exception as err:
        return Body(False, dump_error(err), state, f"{type(err).__name__}: {err}")


def read_body(
    actor_class: Any, method: str, state: bytes, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A readonly method's result on ``state`` (changes it makes to ``self`` are dropped)."""
    obj = restore(actor_class.cls, load_state(state))
    return getattr(obj, method)(*args, **kwargs)


class MethodRunner(Protocol):
    """Where method bodies run: :func:`run_body` and :func:`read_body`, waited for."""

    def run(
        self,
        actor_class: Any,
        method: str,
        state: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
    ) -> Body:
        """:func:`run_body`; ``name`` names the call (the Ray dashboard shows it)."""

    def read(
        self,
        actor_class: Any,
        method: str,
        state: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
    ) -> Any:
        """:func:`read_body`."""


class LocalMethods:
    """Bodies run in this process, in the calling thread."""

    def run(
        self,
        actor_class: Any,
        method: str,
        state: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
    ) -> Body:
        """:func:`run_body` here."""
        return run_body(actor_class, method, state, args, kwargs)

    def read(
        self,
        actor_class: Any,
        method: str,
        state: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
    ) -> Any:
        """:func:`read_body` here."""
        return read_body(actor_class, method, state, args, kwargs)


LOCAL = LocalMethods()
"""The runner of bodies in this process."""

RAY_METHODS = "durableflow.ray.actors"
"""The module of the Ray runner of bodies (``RayMethods``), imported by name when first used."""


def method_runner(client: Client) -> MethodRunner:
    """Where ``client``'s actor calls run their bodies: Ray tasks on its Ray executor, else here."""
    if client.executor.name == "ray":
        runner: MethodRunner = importlib.import_module(RAY_METHODS).RAY_METHODS
        return runner
    return LOCAL
