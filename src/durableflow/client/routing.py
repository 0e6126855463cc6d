"""Choosing a Client's runner, and the plugin runners (see :mod:`durableflow.client.runners`).

- :func:`register_runner`: a runner by name (``Client(runner=name)``), a factory taking the
  Client or ``"module:attribute"`` of one, imported when first used (Ray's is
  ``durableflow.ray.runner:RayRunner``: ``client/`` never imports Ray);
- :func:`choose_runner`: what ``Client(runner=...)`` gets, ``"auto"`` included;
- :class:`AutoRunner`: the facade's runner; each call goes to the plugin runner that claims it
  while that runner's library is imported, else to the embedded runner;
- :func:`load_dag_plugins`: the converters of foreign DAG objects (Ray's), loaded when their
  library is imported.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from durableflow.client.runners import EmbeddedRunner, Handle, Runner
from durableflow.model.dag import DAGNode

if TYPE_CHECKING:
    from durableflow.client.core import Client

__all__ = [
    "DAG_MODULES",
    "LIBRARIES",
    "RUNNERS",
    "AutoRunner",
    "choose_runner",
    "load_dag_plugins",
    "make_runner",
    "register_runner",
]


class AutoRunner(Runner):
    """Embedded, except the calls a plugin runner claims while its library is imported.

    Args:
        client: the Client, handed to the plugin runners it makes.
        embedded: the runner of every call no plugin claims.
    """

    name = "auto"

    def __init__(self, client: Client, embedded: Runner) -> None:
        self._client = client
        self._embedded = embedded
        self._plugins: dict[str, Runner] = {}
        self._lock = threading.Lock()

    def _candidates(self) -> list[Runner]:
        """The plugin runners whose library this process has imported (made on first use)."""
        found = []
        for name, library in LIBRARIES.items():
            if library not in sys.modules:
                continue
            with self._lock:
                runner = self._plugins.get(name)
                if runner is None:
                    runner = self._plugins[name] = make_runner(name, self._client)
            found.append(runner)
        return found

    def _for(self, *, dag: Any = None, workflow_id: str | None = None) -> Runner:
        for runner in self._candidates():
            if runner.claims(dag=dag, workflow_id=workflow_id):
                return runner
        return self._embedded

    def start(
        self,
        workflow_id: str,
        dag: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        metadata: dict[str, Any] | None,
        timeout_s: float | None = None,
    ) -> Handle:
        """The start of the runner that claims ``dag``."""
        return self._for(dag=dag).start(workflow_id, dag, args, kwargs, metadata, timeout_s)

    def run(
        self,
        workflow_id: str,
        dag: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        metadata: dict[str, Any] | None,
        timeout_s: float | None = None,
    ) -> Any:
        """The run of the runner that claims ``dag``."""
        return self._for(dag=dag).run(workflow_id, dag, args, kwargs, metadata, timeout_s)

    def resume_async(self, workflow_id: str, *, wait: bool = True) -> Handle:
        """The resume of the runner that claims the stored workflow."""
        return self._for(workflow_id=workflow_id).resume_async(workflow_id, wait=wait)

    def resume(self, workflow_id: str) -> Any:
        """The resume of the runner that claims the stored workflow, waited for."""
        return self._for(workflow_id=workflow_id).resume(workflow_id)

    def resume_many(self, workflow_ids: list[str]) -> list[tuple[str, Handle]]:
        """Each workflow resumed by the runner that claims it; handles in ``workflow_ids`` order."""
        groups: dict[int, tuple[Runner, list[str]]] = {}
        for workflow_id in workflow_ids:
            runner = self._for(workflow_id=workflow_id)
            groups.setdefault(id(runner), (runner, []))[1].append(workflow_id)
        handles = dict(pair for runner, ids in groups.values() for pair in runner.resume_many(ids))
        return [(workflow_id, handles[workflow_id]) for workflow_id in workflow_ids]

    def output(self, workflow_id: str, task_id: str | None) -> Handle:
        """The output handle of the runner that claims the stored workflow."""
        return self._for(workflow_id=workflow_id).output(workflow_id, task_id)

    def result(self, handle: Handle) -> Any:
        """Never called: each call is waited for by the runner that made its handle."""
        raise TypeError("the auto runner waits through the runner that made each handle")

    def close(self, wait: bool) -> None:
        """Close the plugin runners made (the Client closes the embedded one)."""
        for runner in self._plugins.values():
            runner.close(wait)


RunnerFactory = Callable[["Client"], Runner]

RUNNERS: dict[str, RunnerFactory | str] = {"ray": "durableflow.ray.runner:RayRunner"}
"""Plugin runners: name -> a factory taking the Client, or ``"module:attribute"`` of one (lazy).
``"embedded"`` and ``"auto"`` are the Client's own."""

LIBRARIES: dict[str, str] = {"ray": "ray"}
"""Plugin runner name -> the library whose import makes it a candidate of the auto runner."""

DAG_MODULES: dict[str, str] = {"ray": "durableflow.ray.dag"}
"""Library -> our module that teaches :func:`~durableflow.model.dag.as_node` its DAG objects."""


def register_runner(
    name: str,
    factory: RunnerFactory | str,
    *,
    library: str | None = None,
    dag_module: str | None = None,
) -> None:
    """Make ``Client(runner=name)`` use ``factory``.

    Args:
        name: the runner's name, case-insensitive; an existing name is replaced.
        factory: a callable taking the Client and returning a new :class:`Runner`, or
            ``"module:attribute"`` naming one, imported when the name is first used.
        library: a module name: while it is imported, the ``"auto"`` runner asks this runner
            whether it claims each call (:meth:`Runner.claims`).
        dag_module: with ``library``, our module that converts the library's DAG objects,
            imported before such an object is used (:func:`load_dag_plugins`).
    """
    if not isinstance(factory, str) and not callable(factory):
        raise TypeError(f"runner {name!r}: factory must be callable or 'module:attr'")
    RUNNERS[name.lower()] = factory
    if library is not None:
        LIBRARIES[name.lower()] = library
        if dag_module is not None:
            DAG_MODULES[library] = dag_module


def make_runner(name: str, client: Client) -> Runner:
    """A new plugin runner for ``client``.

    Raises:
        ValueError: an unknown name.
        TypeError: the factory did not return a Runner.
    """
    factory = RUNNERS.get(name.lower())
    if factory is None:
        known = ", ".join(sorted({"embedded", "auto", *RUNNERS}))
        raise ValueError(f"unknown runner {name!r}; expected one of {known}")
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
    runner = factory(client)
    if not isinstance(runner, Runner):
        raise TypeError(f"runner {name!r} made {runner!r}, which is not a Runner")
    return runner


def choose_runner(
    client: Client, name: str, embedded: EmbeddedRunner, *, executor_chosen: bool
) -> Runner:
    """The runner called ``name`` for ``client``.

    ``"auto"``: the runner named like the executor if there is one (Ray's executor: Ray's
    runner); else ``embedded`` when an executor was chosen; else an :class:`AutoRunner`.

    Raises:
        ValueError: an unknown name.
    """
    name = name.lower()
    if name == "auto" and client.executor.name in RUNNERS:
        name = client.executor.name
    elif name == "auto" and executor_chosen:
        name = "embedded"
    if name == "auto":
        return AutoRunner(client, embedded)
    return embedded if name == "embedded" else make_runner(name, client)


def load_dag_plugins(dag: Any) -> Any:
    """``dag``, once the converters of the imported libraries' DAG objects are loaded.

    Our own nodes need none; a foreign object (a Ray DAG node) is converted by the module of
    its library (:data:`DAG_MODULES`), imported here when that library is.
    """
    if not isinstance(dag, DAGNode):
        for library, module in DAG_MODULES.items():
            if library in sys.modules:
                importlib.import_module(module)
    return dag
