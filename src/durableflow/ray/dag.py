"""Ray DAGs as they are: ``@ray.remote`` functions bound with ``.bind()``, and ``InputNode``.

Importing this module registers :func:`convert` with
:func:`durableflow.model.dag.register_converter`, so ``workflow.run`` accepts Ray DAG nodes.

A Ray ``FunctionNode`` becomes a :class:`~durableflow.model.dag.TaskNode`:

- function: the remote function's Python function, wrapped in :class:`RayFunction`;
- arguments: converted recursively (``InputNode`` / ``InputAttributeNode`` become ours);
- options: ``_metadata["workflow.io/options"]`` (from ``workflow.options(...)``) are the
  workflow options; Ray's ``max_retries`` and ``retry_exceptions`` feed the engine's retry
  policy (a workflow option of the same name wins); every other Ray option is an executor
  option, so the Ray executor runs the task with it.

Conversion is memoized by node identity (same Ray node, same TaskNode), because ``flatten``
tells tasks apart by identity. It is iterative, so long chains do not hit the recursion limit.

Ray's semantics are kept, as in ``dag.execute()``:

- a node or an ObjectRef given directly as an argument is resolved to its value; one nested in
  a list, tuple or dict is passed as an ObjectRef (for a node: of its output);
- a task may take and return ObjectRefs anywhere in its values. Stored values keep the refs'
  *values*, and reading them back puts those into the object store again, so a workflow resumed
  on a new cluster still has them (without Ray initialized, the plain values come back).
"""

from __future__ import annotations

import importlib
import inspect
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

try:
    import ray
    from ray.dag import DAGNode as RayDAGNode
    from ray.dag import FunctionNode
    from ray.dag import InputAttributeNode as RayInputAttributeNode
    from ray.dag import InputNode as RayInputNode
except ImportError as err:  # pragma: no cover - exercised in a subprocess without Ray
    raise ImportError(
        "running Ray DAGs needs Ray: install the ray extra (pip install '.[ray]' in a clone of "
        "durableflow) or pip install ray"
    ) from err

from durableflow.model.dag import (
    Continuation,
    DAGNode,
    InputAttributeNode,
    InputNode,
    TaskNode,
    execute,
    register_converter,
)
from durableflow.model.task import WORKFLOW_OPTIONS_KEY, TaskOptions
from durableflow.ray.values import _Portable, portable, unwrap

__all__ = [
    "RayFunction",
    "accept_workflow_options",
    "convert",
    "execute_ray_dag",
    "is_ray_dag",
    "merge_metadata",
    "portable",
    "unwrap",
]

Path = tuple[int | str, ...]

_converted: weakref.WeakKeyDictionary[Any, TaskNode] = weakref.WeakKeyDictionary()
_lock = threading.RLock()


def accept_workflow_options() -> None:
    """Let Ray accept ``f.options(**workflow.options(...))`` again.

    ``workflow.options`` returns ``{"_metadata": {"workflow.io/options": {...}}}``, the shape
    Ray Workflows used. Ray dropped the ``_metadata`` task option together with ``ray.workflow``
    (2.48); this puts it back in Ray's table of task options (Ray ignores its value), so programs
    written for ``ray.workflow`` keep working. Older Rays have it already.
    """
    try:
        option_utils = importlib.import_module("ray._common.ray_option_utils")
    except ImportError:  # Ray < 2.46
        option_utils = importlib.import_module("ray._private.ray_option_utils")
    table: dict[str, Any] = option_utils.task_options
    if "_metadata" not in table:
        table["_metadata"] = type(table["name"])((dict, type(None)))
    update = option_utils.update_options
    if not getattr(update, "_durableflow", False):
        setattr(option_utils, "update_options", _merging_update(update))  # noqa: B010


def _merging_update(update: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Ray's ``update_options``, merging ``_metadata`` per namespace as Ray <= 2.47 did.

    Ray 2.48 made the merge shallow, so ``f.options(**workflow.options(checkpoint=False))`` on
    a function decorated with ``@workflow.options(task_id=...)`` would drop the task id.
    """

    def update_options(original: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        updated = update(original, new)
        if isinstance(original.get("_metadata"), dict) and isinstance(new.get("_metadata"), dict):
            updated["_metadata"] = merge_metadata(original["_metadata"], new["_metadata"])
        return updated

    update_options._durableflow = True  # type: ignore[attr-defined]
    return update_options


def merge_metadata(old: Any, new: Any) -> dict[str, Any]:
    """Ray's ``_metadata`` option updated namespace by namespace.

    ``{"workflow.io/options": {"task_id": "a", "metadata": {...}}}`` updated with
    ``{"workflow.io/options": {"task_id": "b"}}`` keeps ``metadata`` and takes the new task id.
    """
    merged: dict[str, Any] = dict(old or {})
    for namespace, config in (new or {}).items():
        before = merged.get(namespace)
        if isinstance(before, dict) and isinstance(config, dict):
            merged[namespace] = {**before, **config}
        else:
            merged[namespace] = config
    return merged


def is_ray_dag(obj: Any) -> bool:
    """Whether ``obj`` is a Ray DAG node."""
    return isinstance(obj, RayDAGNode)


def execute_ray_dag(dag: Any) -> Any:
    """Run a Ray DAG on Ray, without storage, and return its value (``ray.get(dag.execute())``).

    Where Ray no longer has ``execute`` the DAG runs here, task after task.
    """
    if hasattr(type(dag), "execute"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return ray.get(dag.execute())
    node = convert(dag)
    if not isinstance(node, TaskNode):
        raise TypeError(f"not a Ray function node: {dag!r}")
    return unwrap(execute(node))


# --- the task function --------------------------------------------------------------------------
def _replace(value: Any, path: Path, fn: Callable[[Any], Any]) -> Any:
    if not path:
        return fn(value)
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        copied = list(value)
        copied[head] = _replace(copied[head], rest, fn)  # type: ignore[index]
        return copied
    if isinstance(value, tuple):
        items = list(value)
        items[head] = _replace(items[head], rest, fn)  # type: ignore[index]
        return type(value)(items)
    if isinstance(value, dict):
        copied_dict = dict(value)
        copied_dict[head] = _replace(copied_dict[head], rest, fn)
        return copied_dict
    return value


def _first(items: list[Any]) -> Any:
    return items[0]


_first_remote = ray.remote(num_cpus=0)(_first)


def _put(value: Any) -> Any:
    value = unwrap(value)
    if isinstance(value, ray.ObjectRef):  # Ray refuses to put a ref: a task returns it instead
        return _first_remote.remote([value])
    return ray.put(value)


class RayFunction:
    """The Python function of a Ray remote function, called with Ray's semantics.

    Args:
        body: the function.
        ref_paths: where a nested upstream node's output is passed as an ObjectRef.
        portable_paths: where a stored argument may still be wrapped by :func:`portable`.
    """

    def __init__(
        self,
        body: Callable[..., Any],
        ref_paths: tuple[Path, ...] = (),
        portable_paths: tuple[Path, ...] = (),
    ) -> None:
        self.body = body
        self.ref_paths = ref_paths
        self.portable_paths = portable_paths
        self.__module__ = getattr(body, "__module__", None) or "__main__"
        self.__qualname__ = getattr(body, "__qualname__", None) or getattr(body, "__name__", "task")
        self.__name__ = getattr(body, "__name__", self.__qualname__)
        self.__doc__ = getattr(body, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function; nested upstream outputs go in as ObjectRefs, as on Ray."""
        values: dict[int | str, Any] = {i: unwrap(a) for i, a in enumerate(args)}
        values.update((k, unwrap(v)) for k, v in kwargs.items())
        for path in self.portable_paths:
            values[path[0]] = _replace(values[path[0]], path[1:], unwrap)
        for path in self.ref_paths:
            values[path[0]] = _replace(values[path[0]], path[1:], _put)
        call_args = [values[i] for i in range(len(args))]
        call_kwargs = {k: values[k] for k in kwargs}
        result = self.body(*call_args, **call_kwargs)
        if isinstance(result, (Continuation, DAGNode, RayDAGNode)):
            return result
        return portable(result)

    def __repr__(self) -> str:
        return f"<Ray function {self.__module__}.{self.__qualname__}>"


# --- conversion -----------------------------------------------------------------------------
def convert(obj: Any) -> DAGNode | None:
    """Our node for a Ray DAG node, or None for anything else.

    Raises:
        TypeError: a Ray node of a kind workflows cannot run (actors, class methods), or
            arguments that do not fit the function.
        ValueError: options a workflow task cannot have (``num_returns`` > 1).
    """
    if isinstance(obj, FunctionNode):
        with _lock:
            node = _converted.get(obj)
            if node is None:
                _convert_tree(obj)
                node = _converted[obj]
            return node
    if isinstance(obj, RayInputAttributeNode):
        kind = "attr" if getattr(obj, "_accessor_method", "") == "__getattr__" else "item"
        key = obj._key if hasattr(obj, "_key") else obj.key  # no ``key`` property before 2.30
        return InputAttributeNode(key, kind)
    if isinstance(obj, RayInputNode):
        return InputNode()
    if isinstance(obj, RayDAGNode):
        raise TypeError(
            f"workflows run Ray function nodes (@ray.remote functions bound with .bind()); "
            f"{type(obj).__name__} is not supported"
        )
    return None


def _function_children(node: Any) -> list[Any]:
    children = getattr(node, "_upstream_nodes", None)  # Ray >= 2.30; a scan before that
    if children is None:
        children = node._get_all_child_nodes()
    return [n for n in children if isinstance(n, FunctionNode)]


def _convert_tree(root: Any) -> None:
    """Convert ``root`` and every function node upstream of it, upstream first."""
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if node in _converted:
            continue
        if not expanded:
            stack.append((node, True))
            children = _function_children(node)
            stack.extend((child, False) for child in children if child not in _converted)
            continue
        _converted[node] = _convert_function(node)


def _convert_function(node: Any) -> TaskNode:
    body = node._body
    ref_paths: list[Path] = []
    portable_paths: list[Path] = []
    found: set[int] = set()

    def walk(value: Any, path: Path) -> Any:
        if isinstance(value, FunctionNode):
            found.add(id(value))
            if len(path) > 1:
                ref_paths.append(path)
            return _converted[value]
        if isinstance(value, RayDAGNode):
            portable_paths.append(path)  # the run's input, which may come wrapped
            return convert(value)
        kind = type(value)
        if kind is list or kind is tuple:
            return kind(walk(v, (*path, i)) for i, v in enumerate(value))
        if kind is dict:
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if len(path) == 1 and isinstance(value, ray.ObjectRef):
            value = ray.get(value)  # Ray resolves an ObjectRef given directly as an argument
        wrapped = portable(value, argument=True)
        if wrapped is not value or isinstance(value, _Portable):
            portable_paths.append(path)
        return wrapped

    args = tuple(walk(a, (i,)) for i, a in enumerate(node._bound_args))
    kwargs = {k: walk(v, (k,)) for k, v in node._bound_kwargs.items()}
    hidden = [n for n in _function_children(node) if id(n) not in found]
    if hidden:
        raise TypeError(
            f"{_name(body)}: Ray DAG nodes inside arguments other than lists, tuples and dicts "
            "are not supported by workflows"
        )
    _check_signature(body, args, kwargs)
    func = _ray_function(body, tuple(ref_paths), tuple(portable_paths))
    return TaskNode(func, args, kwargs, _options(node, body))


_FUNCTIONS: dict[tuple[Any, tuple[Path, ...], tuple[Path, ...]], RayFunction] = {}
_FUNCTIONS_KEPT = 1024


def _ray_function(
    body: Callable[..., Any], ref_paths: tuple[Path, ...], portable_paths: tuple[Path, ...]
) -> RayFunction:
    """One :class:`RayFunction` per body and paths, shared by the nodes of a DAG.

    So the Ray executor ships it once (an object in the store), not pickled by value per task.
    """
    key = (body, ref_paths, portable_paths)
    try:
        func = _FUNCTIONS.get(key)
    except TypeError:  # an unhashable body or path
        return RayFunction(body, ref_paths, portable_paths)
    if func is None:
        if len(_FUNCTIONS) >= _FUNCTIONS_KEPT:
            _FUNCTIONS.clear()
        func = _FUNCTIONS[key] = RayFunction(body, ref_paths, portable_paths)
    return func


def _options(node: Any, body: Any) -> TaskOptions:
    ray_options = dict(node._bound_options)
    num_returns = ray_options.pop("num_returns", None)
    if num_returns not in (None, 1):
        raise ValueError(
            f"{_name(body)}: a workflow task returns one value; num_returns="
            f"{num_returns!r} is not supported"
        )
    metadata = dict(ray_options.pop("_metadata", None) or {})
    retries = ("max_retries", "retry_exceptions")
    fields = {k: ray_options.pop(k) for k in retries if k in ray_options}
    fields.update(metadata.pop(WORKFLOW_OPTIONS_KEY, None) or {})
    if metadata:
        ray_options["_metadata"] = metadata
    return TaskOptions().merged(**fields, executor_options=ray_options)


def _check_signature(body: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(body)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(f"{_name(body)}(): {err}") from None


def _name(body: Any) -> str:
    return f"{getattr(body, '__module__', '?')}.{getattr(body, '__qualname__', repr(body))}"


register_converter(convert)
accept_workflow_options()
