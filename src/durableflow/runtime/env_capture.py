"""Capturing the runtime environment of this process, recorded when a workflow is submitted.

Capture must be cheap, because it happens for every workflow started:

- the process part (Python, platform, durableflow version, installed distributions) is computed
  once per process. Distributions are read from the ``*.dist-info`` / ``*.egg-info`` folder
  names on ``sys.path`` (about 1 ms for 100 packages) instead of parsing every METADATA file
  through ``importlib.metadata`` (200-450 ms); only a folder whose name carries no version is
  opened. Packages installed after the first capture are not seen by this process.
- a task function's fingerprint (a hash of its source, ``inspect.getsource``) is computed once
  per function object; it is recorded under :func:`function_key`, which tells apart functions
  pickled by value that share a name (two lambdas are two entries);
- the package list (100+ entries) is not put in the run record, which every status change
  rewrites: it is stored once, content-addressed (``environments/<digest>``, written at most once
  per process and storage), and the record holds its digest.

Each task's ``runtime_env`` option is recorded redacted
(:func:`~durableflow.model.environment.redact_runtime_env`), and what it resolves to here
(:mod:`durableflow.runtime.task_env`). Comparing a recorded environment
with this process's, on resume, is :mod:`durableflow.runtime.environment`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from durableflow.model.dag import FlatDAG
from durableflow.model.environment import redact_runtime_env
from durableflow.runtime.task_env import record_task_envs
from durableflow.storage import layout
from durableflow.storage.base import Storage
from durableflow.storage.store import WorkflowStore

__all__ = [
    "capture_environment",
    "fingerprint",
    "function_key",
    "innermost",
    "installed_distributions",
    "name_of",
    "pickled_by_value",
    "process_environment",
]

_lock = threading.Lock()
_process_env: dict[str, Any] | None = None
_fingerprints: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_written: weakref.WeakKeyDictionary[Storage, set[str]] = weakref.WeakKeyDictionary()
_SCALARS = ("python", "implementation", "platform", "durableflow")


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def _read_metadata(folder: str) -> tuple[str, str] | None:
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, filename), encoding="utf-8", errors="replace") as handle:
                name = version = ""
                for line in handle:
                    if not line.strip():
                        break  # end of the headers
                    if line.startswith("Name:"):
                        name = line[5:].strip()
                    elif line.startswith("Version:"):
                        version = line[8:].strip()
                if name and version:
                    return name, version
        except OSError:
            continue
    return None


def installed_distributions(paths: Iterable[str] | None = None) -> dict[str, str]:
    """``{normalized name: version}`` of the distributions importable from ``paths`` (sys.path).

    The first one found wins, as for imports. A path inside a ``site-packages`` folder of the
    list is a package's private copy of its dependencies (Ray adds ``ray/thirdparty_files``,
    holding psutil and colorama, to ``sys.path`` when imported): it is not what is installed,
    and counting it would make the environment depend on whether Ray was imported yet.
    """
    found: dict[str, str] = {}
    candidates = [os.path.abspath(p or ".") for p in (sys.path if paths is None else paths)]
    roots = [
        p.rstrip(os.sep) + os.sep
        for p in candidates
        if os.path.basename(p.rstrip(os.sep)) in ("site-packages", "dist-packages")
    ]
    for path in candidates:
        if any(path.startswith(root) for root in roots):
            continue
        try:
            entries = os.scandir(path or ".")
        except OSError:
            continue
        with entries:
            for entry in entries:
                stem, dot, kind = entry.name.rpartition(".")
                if not dot or kind not in ("dist-info", "egg-info"):
                    continue
                name, sep, version = stem.partition("-")
                if sep and version:
                    version = version.split("-")[0]  # egg-info: name-1.0-py3.11
                else:
                    meta = _read_metadata(entry.path) if entry.is_dir() else None
                    if meta is None:
                        continue
                    name, version = meta
                found.setdefault(_normalize(name), version)
    return dict(sorted(found.items()))


def process_environment() -> dict[str, Any]:
    """Python, platform, durableflow version and installed packages of this process (cached).

    The returned dict is shared: do not modify it.
    """
    global _process_env
    with _lock:
        if _process_env is None:
            packages = installed_distributions()
            version = packages.get("durableflow")
            if version is None:
                try:
                    from importlib.metadata import version as dist_version

                    version = dist_version("durableflow")
                except Exception:  # not installed: running from a source tree
                    version = "unknown"
            canonical = json.dumps(packages, sort_keys=True, separators=(",", ":")).encode()
            _process_env = {
                "python": platform.python_version(),
                "implementation": platform.python_implementation(),
                "platform": f"{sys.platform}-{platform.machine()}",
                "durableflow": version,
                "packages": packages,
                "packages_digest": hashlib.sha256(canonical).hexdigest()[:32],
            }
        return _process_env


def innermost(obj: Any) -> Any:
    """The plain function under task wrappers, decorators and Ray remote functions."""
    for _ in range(32):
        inner = getattr(obj, "__wrapped__", None) or getattr(obj, "_function", None)
        if inner is None or inner is obj:
            return obj
        obj = inner
    return obj


def pickled_by_value(module: str, qualname: str) -> bool:
    """Whether a function named so is pickled by value: it cannot be imported by its name."""
    return module in ("__main__", "?") or "<" in qualname


def _reachable(func: Any, module: str, qualname: str) -> bool:
    """Whether ``module.qualname`` is ``func`` now (not another function of the same name)."""
    obj: Any = sys.modules.get(module)
    if obj is None:
        return True  # not imported here: cannot tell, take the name at its word
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return innermost(obj) is func


def name_of(func: Any) -> tuple[str, str]:
    """``(module, qualname)`` of a plain function (or callable)."""
    module = getattr(func, "__module__", None) or "?"
    name = (
        getattr(func, "__qualname__", None)
        or getattr(func, "__name__", None)
        or type(func).__qualname__
    )
    return module, name


def function_key(func: Any) -> str:
    """``module:qualname`` of a task function; ``...@file:line`` if it is pickled by value.

    A function that cannot be imported by its name (a lambda, a nested function, one defined
    in ``__main__``, one shadowed by a later function of the same name) shares its name with
    others (every lambda is ``<lambda>``): its place, the file and first line of its code,
    tells them apart.
    """
    func = innermost(func)
    module, name = name_of(func)
    key = f"{module}:{name}"
    code = getattr(func, "__code__", None)
    if code is not None and (pickled_by_value(module, name) or not _reachable(func, module, name)):
        key += f"@{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    return key


def fingerprint(func: Any) -> str:
    """``sha256:<16 hex>`` of a function's source, or of its bytecode when there is no source."""
    func = innermost(func)
    try:
        cached = _fingerprints.get(func)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None:
        return cached
    import inspect

    try:
        text = inspect.getsource(func)
        value = "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        if code is None:
            return "unavailable"
        value = (
            "code:" + hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:16]
        )
    with contextlib.suppress(TypeError):  # not weak-referenceable: not cached
        _fingerprints[func] = value
    return value


def capture_environment(flat: FlatDAG, store: WorkflowStore) -> dict[str, Any]:
    """The environment to record with a workflow about to run ``flat`` (stores its packages)."""
    current = process_environment()
    digest = current["packages_digest"]
    _store_packages(store.storage, digest, current["packages"])
    env: dict[str, Any] = {name: current[name] for name in _SCALARS}
    env["packages_digest"] = digest
    env["package_count"] = len(current["packages"])
    functions: dict[str, str] = {}
    task_envs: dict[str, Any] = {}
    seen: set[int] = set()  # ids of the functions recorded already
    for spec in flat.specs:
        if id(spec.func) not in seen:
            seen.add(id(spec.func))
            _record_function(functions, spec.func)
        runtime_env = spec.options.executor_options.get("runtime_env")
        if runtime_env is not None:
            task_envs[spec.task_id] = redact_runtime_env(runtime_env)
    env["functions"] = functions
    if task_envs:
        env["task_runtime_envs"] = task_envs
        env.update(record_task_envs(flat.specs))  # what each option resolves to here
    return env


def _record_function(functions: dict[str, str], func: Any) -> str:
    """Add ``func``'s fingerprint to ``functions`` under a key no other function has; the key.

    Two distinct functions with one key (two lambdas on one line, a function shadowed by
    another of the same name) are kept apart by a ``#n`` suffix when their sources differ.
    """
    key, value = function_key(func), fingerprint(func)
    candidate, n = key, 1
    while functions.get(candidate, value) != value:
        n += 1
        candidate = f"{key}#{n}"
    functions[candidate] = value
    return candidate


def _store_packages(storage: Storage, digest: str, packages: Mapping[str, str]) -> None:
    with _lock:
        if digest in _written.get(storage, ()):
            return
    data = json.dumps(dict(packages), sort_keys=True, separators=(",", ":")).encode()
    storage.create(layout.environment_key(digest), data)  # False: stored already, same bytes
    with _lock:
        _written.setdefault(storage, set()).add(digest)
