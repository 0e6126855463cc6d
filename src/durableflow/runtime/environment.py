"""The runtime environment: captured at submission, compared on resume.

Capture must be cheap, because it happens for every workflow started:

- the process part (Python, platform, durableflow version, installed distributions) is computed
  once per process. Distributions are read from the ``*.dist-info`` / ``*.egg-info`` folder
  names on ``sys.path`` (about 1 ms for 100 packages) instead of parsing every METADATA file
  through ``importlib.metadata`` (200-450 ms); only a folder whose name carries no version is
  opened. Packages installed after the first capture are not seen by this process.
- a task function's fingerprint (a hash of its source, ``inspect.getsource``) is computed once
  per function object;
- the package list (100+ entries) is not put in the run record, which every status change
  rewrites: it is stored once, content-addressed (``environments/<digest>``, written at most once
  per process and storage), and the record holds its digest. Readers get it back expanded
  (:func:`expand_environment`).

The check on resume (:func:`check_environment`) compares the recorded environment with this
process's: package versions, Python, durableflow, and the source of every task function that
is imported by reference (a function pickled by value, e.g. one defined in ``__main__``, runs
the recorded code, so it is not compared). Task functions are recorded per function, not per
name: a function pickled by value (a lambda, a nested function, one in ``__main__``) is keyed
by its place too (``__main__:<lambda>@script.py:12``), so two lambdas are two entries, and a
change is reported with the ids of the tasks that run the changed function.

What is recorded in clear, and what is not: the run record (and ``get_metadata``) holds the
environment above and, per task, its ``runtime_env`` option with the **values of its
``env_vars`` replaced by** ``"<redacted>"`` (the names are kept): they are often secrets. The
task still gets the real values where it runs: the option is passed to the executor as given,
and it is kept, with the task's arguments, in the task specs, which are stored in clear (signed
with a signing key, never encrypted), like outputs, errors and user metadata. Anyone who can
read the storage can read those.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import logging
import os
import platform
import sys
import threading
import warnings
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from durableflow.errors import EnvironmentChangedWarning, EnvironmentMismatchError
from durableflow.model.dag import FlatDAG
from durableflow.model.environment import (
    EnvironmentDiff,
    diff_environments,
    redact_runtime_env,
    validate_env_policy,
)
from durableflow.model.records import RunRecord
from durableflow.storage import layout
from durableflow.storage.base import Storage
from durableflow.storage.store import WorkflowStore

__all__ = [
    "capture_environment",
    "check_environment",
    "environment_diff",
    "expand_environment",
    "fingerprint",
    "function_key",
    "installed_distributions",
    "process_environment",
]

log = logging.getLogger("durableflow")

_lock = threading.Lock()
_process_env: dict[str, Any] | None = None
_fingerprints: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_written: weakref.WeakKeyDictionary[Storage, set[str]] = weakref.WeakKeyDictionary()
_read: dict[str, dict[str, str]] = {}
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


def _innermost(obj: Any) -> Any:
    """The plain function under task wrappers, decorators and Ray remote functions."""
    for _ in range(32):
        inner = getattr(obj, "__wrapped__", None) or getattr(obj, "_function", None)
        if inner is None or inner is obj:
            return obj
        obj = inner
    return obj


def _by_value(module: str, qualname: str) -> bool:
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
    return _innermost(obj) is func


def _name_of(func: Any) -> tuple[str, str]:
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
    func = _innermost(func)
    module, name = _name_of(func)
    key = f"{module}:{name}"
    code = getattr(func, "__code__", None)
    if code is not None and (_by_value(module, name) or not _reachable(func, module, name)):
        key += f"@{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    return key


def fingerprint(func: Any) -> str:
    """``sha256:<16 hex>`` of a function's source, or of its bytecode when there is no source."""
    func = _innermost(func)
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


def expand_environment(store: WorkflowStore, recorded: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded environment with its ``packages`` read back from their digest."""
    env = dict(recorded)
    digest = env.get("packages_digest")
    if "packages" in env or not digest:
        return env
    packages = _read.get(digest)
    if packages is None:
        raw = store.storage.get(layout.environment_key(digest))
        try:
            packages = json.loads(raw) if raw is not None else None
        except ValueError:
            packages = None
        if not isinstance(packages, dict):
            env["packages"] = {}
            env["packages_missing"] = True
            return env
        _read[digest] = packages
    env["packages"] = packages
    return env


def current_functions(names: Iterable[str]) -> dict[str, str]:
    """For each ``module:qualname`` importable by reference: its fingerprint now, or "!why"."""
    out: dict[str, str] = {}
    for name in names:
        module, _, qualname = name.partition(":")
        if _by_value(module, qualname) or "@" in qualname or "#" in qualname:
            continue  # pickled by value: the recorded code is the code that runs
        try:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except Exception as err:
            out[name] = f"!{type(err).__name__}: {err}"
            continue
        out[name] = fingerprint(obj)
    return out


def environment_diff(
    store: WorkflowStore, workflow_id: str, recorded: Mapping[str, Any]
) -> EnvironmentDiff:
    """Compare a recorded environment with this process's; name the tasks of changed code."""
    current = process_environment()
    if recorded.get("packages_digest") == current["packages_digest"] and "packages" not in recorded:
        full = {**recorded, "packages": current["packages"]}  # same digest: no read needed
    else:
        full = expand_environment(store, recorded)
    diff = diff_environments(
        workflow_id, full, current, current_functions(recorded.get("functions") or {})
    )
    named = {*diff.functions_changed, *diff.functions_missing}
    if not named:
        return diff
    return dataclasses.replace(diff, function_tasks=_tasks_of(store, workflow_id, named))


def _tasks_of(store: WorkflowStore, workflow_id: str, keys: set[str]) -> dict[str, tuple[str, ...]]:
    """The ids of the stored tasks that run each function of ``keys``, where the specs load.

    Only for a diff that found changes. Specs that do not load here (their module is gone)
    name no task: the function is reported alone.
    """
    try:
        batches = store.read_specs(workflow_id)
    except Exception as err:  # a missing module, a corrupt or unsigned spec: name no task
        log.debug("workflow %r: specs not loaded to name changed tasks: %s", workflow_id, err)
        return {}
    # Only functions imported by their name are compared, so the name finds them: the specs
    # hold copies of the functions (pickled by value), which are not the ones importable now.
    tasks: dict[str, list[str]] = {}
    for flat in batches.values():
        for spec in flat.specs:
            key = ":".join(_name_of(_innermost(spec.func)))
            if key in keys:
                tasks.setdefault(key, []).append(spec.task_id)
    return {key: tuple(sorted(ids)) for key, ids in tasks.items()}


def check_environment(
    store: WorkflowStore, record: RunRecord, policy: str
) -> EnvironmentDiff | None:
    """Apply the environment policy before a workflow resumes here.

    Args:
        store: where the recorded package lists are.
        record: the workflow's run record (its ``runtime_env`` is the recorded environment).
        policy: ``ignore`` (no check), ``warn`` (an EnvironmentChangedWarning naming every
            change) or ``error`` (refuse).

    Raises:
        EnvironmentMismatchError: policy ``error`` and something changed.
    """
    policy = validate_env_policy(policy)
    if policy == "ignore" or not record.runtime_env:
        return None
    diff = environment_diff(store, record.workflow_id, record.runtime_env)
    if diff.is_empty:
        return diff
    message = f"workflow {record.workflow_id!r} resumes in a changed environment: {diff.summary()}"
    if policy == "error":
        raise EnvironmentMismatchError(
            message + " (env_policy='error'; use 'warn' or 'ignore' to resume anyway)",
            workflow_id=record.workflow_id,
            diff=diff,
        )
    warnings.warn(message, EnvironmentChangedWarning, stacklevel=4)
    return diff
