"""Virtual actors on Ray: bodies as Ray tasks, calls applied by the cluster's coordinator.

The call protocol is the one of :mod:`durableflow.actors.runtime`, unchanged: the same keys,
the same create-only commit, the same lease. On Ray, only *where* things run moves:

- **Method bodies** (Drain 4) run as Ray tasks with the class's Ray options
  (``@virtual_actor(num_cpus=...)``, ``ActorClass.options(...)``) when the writer's Client runs
  tasks on Ray (its executor): :class:`RayMethods`. The task gets the state and the arguments
  and returns the pickled result and new state (:func:`~durableflow.actors.body.run_body`); it
  writes nothing, the writer commits. A DAG the method returned comes back to the writer, which
  runs it as the call's sub-workflow on its Client (its tasks are Ray tasks too). A method that
  raises is the call's error, as everywhere; a lost worker is retried by Ray (the task's
  ``max_retries``, Ray's default 3), and past that the call stays pending and its callers get
  Ray's error (the next writer runs it again).
- **Mutating calls** of a Client on the Ray runner (the facade on the Ray executor):
  :class:`RayActorRuntime` stores each call in the caller's thread (Submit 1-2, so one thread's
  calls keep their order), then asks the coordinator to see it through
  (:func:`apply_call`: the coordinator's runtime of the actor drains as the writer, or waits
  for the writer that holds the lease). ``run_async`` returns that request's ``ray.ObjectRef``
  (``ray.get`` gives the call's result or raises its error); ``run`` waits for it.
- **Readonly calls** on the Ray runner read the last committed state in the caller and run the
  method on it as a Ray task (its ObjectRef is ``run_async``'s).
- **Mailboxes**: the coordinator drains the marked mailboxes of every storage it serves, as a
  ``durableflow worker`` does (:class:`CoordinatorMailboxes`: every second, and at once when a
  ``send`` through the Ray runner asks).

Ray is imported lazily: this module is imported by name (``durableflow.actors`` never imports
Ray), and only where Ray is used.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from durableflow.actors.body import Body, read_body, run_body
from durableflow.actors.draining import MailboxDrainer
from durableflow.actors.registry import runtime_for
from durableflow.actors.runtime import ActorRuntime
from durableflow.config import ClientSettings
from durableflow.model.dag import TaskNode
from durableflow.ray.coordinator.driver import coordinator, result
from durableflow.ray.packing import PackedDAG, pack, unpack

if TYPE_CHECKING:
    from durableflow.client import Client

__all__ = [
    "MAILBOX_POLL",
    "RAY_METHODS",
    "CoordinatorMailboxes",
    "RayActorRuntime",
    "RayMethods",
    "apply_call",
]

log = logging.getLogger("durableflow.actors")

MAILBOX_POLL = 1.0
"""Seconds between two scans of a storage's mailboxes by the coordinator (a worker's default)."""

_NOT_RAY_OPTIONS = frozenset({"num_returns", "max_calls"})


def _shipped_body(
    actor_class: Any, method: str, state: bytes, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Body:
    """The Ray task of a mutating call: :func:`run_body`, its DAG packed (deep DAGs pickle)."""
    body = run_body(actor_class, method, state, args, kwargs)
    if isinstance(body.node, TaskNode):
        body.node = pack(body.node)
    return body


class RayMethods:
    """Method bodies as Ray tasks with the class's Ray options (a runner of :mod:`.body`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._remote: dict[str, Any] = {}

    def _task(self, function: Any, actor_class: Any, name: str) -> Any:
        import ray

        with self._lock:
            remote = self._remote.get(function.__name__)
            if remote is None:
                remote = self._remote[function.__name__] = ray.remote(function)
        options = {k: v for k, v in actor_class.ray_options.items() if k not in _NOT_RAY_OPTIONS}
        options.setdefault("name", name)
        options["retry_exceptions"] = False  # a method's exception is its call's outcome
        return remote.options(**options)

    def run(
        self,
        actor_class: Any,
        method: str,
        state: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
    ) -> Body:
        """:func:`run_body` as a Ray task, waited for."""
        import ray

        task = self._task(_shipped_body, actor_class, name)
        body: Body = ray.get(task.remote(actor_class, method, state, args, kwargs))
        if isinstance(body.node, PackedDAG):
            body.node = unpack(body.node)
        return body

    def read_ref(
        self,
        actor_class: Any,
        method: str,
        state: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
    ) -> Any:
        """:func:`read_body` as a Ray task: its ObjectRef."""
        return self._task(read_body, actor_class, name).remote(
            actor_class, method, state, args, kwargs
        )

    def read(
        self,
        actor_class: Any,
        method: str,
        state: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
    ) -> Any:
        """:func:`read_body` as a Ray task, waited for (its error raised as itself)."""
        return result(self.read_ref(actor_class, method, state, args, kwargs, name))


RAY_METHODS = RayMethods()
"""The runner of method bodies on Ray (:func:`durableflow.actors.body.method_runner`)."""


class RayActorRuntime(ActorRuntime):
    """An actor of a Client on the Ray runner: the coordinator applies its calls.

    Calls are stored here, in the caller's thread (Submit 1-2), so their order and durability
    are the ones of every runtime; what a caller gets back is a ``ray.ObjectRef``.
    """

    def _settings(self) -> ClientSettings:
        settings = self.client.settings
        if settings.storage_url.startswith("memory:"):
            raise ValueError(
                "memory:// storage cannot be used on Ray: actor calls are applied in the "
                "cluster, which reopens the storage from its URL; use a directory or s3://"
            )
        return settings

    def call_async(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Store the call, then ask the coordinator to apply it: the ObjectRef of its result."""
        settings = self._settings()
        seq = self.submit(method, args, kwargs, "run")
        return coordinator().actor_call.remote(settings, self.actor_class, self.actor_id, seq)

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """:meth:`call_async`, waited for (the call's error raised as itself)."""
        return result(self.call_async(method, args, kwargs))

    def read_async(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A readonly call on the last committed state, as a Ray task: its ObjectRef."""
        seq, state = self.committed()
        name = f"actor.{self.actor_id}.{method}.read.{seq}"
        return RAY_METHODS.read_ref(self.actor_class, method, state, args, kwargs, name)

    def read(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """:meth:`read_async`, waited for."""
        return result(self.read_async(method, args, kwargs))

    def submit(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], mode: str) -> int:
        """Store a call; a sent one is also announced to the coordinator (not waited for)."""
        settings = self._settings()
        seq = super().submit(method, args, kwargs, mode)
        if mode == "send":
            coordinator().actor_drain.remote(settings)
        return seq

    def ready(self) -> Any:
        """An ObjectRef of True (Ray 1.x's ``ray.get(actor.ready())``)."""
        import ray

        return ray.put(True)


def apply_call(client: Client, actor_class: Any, actor_id: str, seq: int) -> Any:
    """The result of stored call ``seq``, once committed (the coordinator's side of a call).

    This process drains the actor when it can be the writer, else waits for the writer.

    Raises:
        ActorCallError: the method raised.
        ActorNotFoundError: the actor was deleted.
    """
    runtime = runtime_for(client, actor_id, actor_class.using(client))
    return runtime.track(seq).result()


class CoordinatorMailboxes:
    """The coordinator's drain of one storage's marked mailboxes (a worker's, on Ray).

    Args:
        client: the coordinator's Client of that storage.
        poll: seconds between two scans.
    """

    def __init__(self, client: Client, poll: float = MAILBOX_POLL) -> None:
        self.drainer = MailboxDrainer(client)
        self.poll = poll
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="durableflow-ray-mailboxes", daemon=True
        )
        self._thread.start()

    def poke(self) -> None:
        """Scan now (a call was sent)."""
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.poll)
            self._wake.clear()
            try:
                self.drainer.start()
            except Exception:  # the loop must outlive one bad scan; the next one retries
                log.exception("draining actor mailboxes failed")
