"""ObjectRefs inside stored values: kept as their values, made ObjectRefs again when read.

A task may take and return ObjectRefs anywhere in its values (Ray's semantics). A ref is only
good while its cluster lives, so whatever is stored holds the refs' *values* instead, and
reading it back puts them into the object store again (when Ray is initialized; else the plain
values come back). That is done by wrapping such a value (:func:`portable`), whose pickling
fetches the values; :func:`unwrap` takes the wrapper off where a task function gets the value.

Stored values name :func:`_restore` and :func:`_restore_argument` by module path: keep both
names, and when this module moves, map its old path in
:data:`~durableflow.storage.serializer.MOVED_MODULES` (values stored before 2026-12 name it
``durableflow.executors.ray_values``), or old checkpoints stop loading.

Ray is imported on first use (it is imported already wherever an ObjectRef exists).
"""

from __future__ import annotations

import io
import pickle
import sys
from typing import Any

import cloudpickle

from durableflow.storage.serializer import MOVED_MODULES

__all__ = ["portable", "unwrap"]

_ATOMS = (type(None), bool, int, float, complex, str, bytes)


def _ray() -> Any:
    ray = sys.modules.get("ray")
    if ray is None:
        import ray
    return ray


def _object_ref() -> Any:
    return _ray().ObjectRef


class _Found(Exception):
    """Raised by the scanner at the first ObjectRef."""


class _NullFile:
    def write(self, data: Any) -> int:
        return len(data)


class _RefScanner(cloudpickle.Pickler):  # type: ignore[misc]
    """Pickles into nothing, to find out whether a value holds an ObjectRef anywhere."""

    def __init__(self) -> None:
        super().__init__(_NullFile(), protocol=5, buffer_callback=lambda _: None)

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _object_ref()):
            raise _Found
        return super().reducer_override(obj)


class _RefPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """Pickles a value with each ObjectRef replaced by its index in ``refs``."""

    def __init__(self, file: io.BytesIO, refs: list[Any]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.refs = refs
        self._index: dict[bytes, int] = {}

    def persistent_id(self, obj: Any) -> int | None:
        if not isinstance(obj, _object_ref()):
            return None
        key = obj.binary()
        if key not in self._index:
            self._index[key] = len(self.refs)
            self.refs.append(obj)
        return self._index[key]


class _RefUnpickler(pickle.Unpickler):
    """Unpickles what :class:`_RefPickler` wrote: refs again, moved modules at their new path."""

    def __init__(self, data: bytes, values: list[Any]) -> None:
        super().__init__(io.BytesIO(data))
        self._values = values
        self._refs: dict[int, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)

    def persistent_load(self, pid: Any) -> Any:
        if pid not in self._refs:
            self._refs[pid] = _object_ref_of(self._values[pid])
        return self._refs[pid]


def _object_ref_of(value: Any) -> Any:
    """An ObjectRef of ``value`` (``value`` itself without Ray).

    A value that is itself an ObjectRef (a chain: a task returned ``inner.remote()`` and
    ``inner`` returned ``ray.put(...)``) cannot be put; a task returning it gives the same
    chain, as Ray keeps a ref returned by a task as the object's value.
    """
    ray = _ray()
    if not ray.is_initialized():
        return value
    if isinstance(value, ray.ObjectRef):
        return _chain_remote().remote([value])
    return ray.put(value)


def _first(items: list[Any]) -> Any:
    return items[0]


_chain: list[Any] = []


def _chain_remote() -> Any:
    if not _chain:
        _chain.append(_ray().remote(num_cpus=0, max_retries=3)(_first))
    return _chain[0]


def _restore(data: bytes, values: list[Any]) -> Any:
    return _RefUnpickler(data, values).load()


def _restore_argument(data: bytes, values: list[Any]) -> Any:
    return _PortableArgument(_restore(data, values))


class _Portable:
    """A value holding ObjectRefs; pickled with the refs' values instead of the refs.

    Unpickling puts the values into the object store again (when Ray is initialized) and gives
    the plain value back, refs and all: what a reader of a stored output wants.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        refs: list[Any] = []
        buffer = io.BytesIO()
        _RefPickler(buffer, refs).dump(self.value)
        values = [portable(v) for v in _ray().get(refs)] if refs else []
        return (_restore, (buffer.getvalue(), values))


class _PortableArgument(_Portable):
    """Like :class:`_Portable`, but it stays wrapped through any number of picklings.

    For task arguments: they travel (driver, coordinator, storage, workers) and every stored copy
    must keep the values; :class:`RayFunction` unwraps them where it knows they are.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        _, args = super().__reduce__()
        return (_restore_argument, args)


def portable(value: Any, *, argument: bool = False) -> Any:
    """``value``, wrapped if it holds ObjectRefs, so that pickling keeps their values.

    Args:
        value: any value.
        argument: a task argument, which stays wrapped when unpickled; else (an output) the
            plain value comes back.
    """
    if isinstance(value, (*_ATOMS, _Portable)):
        return value
    wrapper = _PortableArgument if argument else _Portable
    if isinstance(value, _object_ref()):
        return wrapper(value)
    try:
        _RefScanner().dump(value)
    except _Found:
        return wrapper(value)
    except Exception:  # unpicklable: the store names the culprit when it writes the value
        return value
    return value


def unwrap(value: Any) -> Any:
    """The value inside a :func:`portable` wrapper (or ``value`` itself)."""
    return value.value if isinstance(value, _Portable) else value
