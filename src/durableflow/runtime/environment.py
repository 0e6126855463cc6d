"""The runtime environment: captured at submission, compared on resume.

Capturing it (cheaply: once per process, once per function, the package list stored once,
content-addressed) is :mod:`durableflow.runtime.env_capture`; its names are re-exported here.
Readers get a recorded environment back expanded (:func:`expand_environment`).

The check on resume (:func:`check_environment`) compares the recorded environment with this
process's: package versions, Python, durableflow, what the ``runtime_env`` option of each
task that will run again resolves to (:mod:`durableflow.runtime.task_env`), and the source of
every task function that is imported by reference (a function pickled by value, e.g. one
defined in ``__main__``, runs the recorded code, so it is not compared). Task functions are
recorded per function, not per name: a function pickled by value (a lambda, a nested
function, one in ``__main__``) is keyed by its place too (``__main__:<lambda>@script.py:12``),
so two lambdas are two entries, and a change is reported with the ids of the tasks that run
the changed function.

What is recorded in clear, and what is not: the run record (and ``get_metadata``) holds the
environment above and, per task, its ``runtime_env`` option with the **values of its
``env_vars`` replaced by** ``"<redacted>"`` (the names are kept): they are often secrets. The
task still gets the real values where it runs: the option is passed to the executor as given,
and it is kept, with the task's arguments, in the task specs, which are stored in clear (signed
with a signing key, never encrypted), like outputs, errors and user metadata. Anyone who can
read the storage can read those. What each task's option resolved to is recorded with the
names of its ``env_vars`` and a salted digest of their values, never the values.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from durableflow.errors import EnvironmentChangedWarning, EnvironmentMismatchError
from durableflow.model.environment import (
    EnvironmentDiff,
    diff_environments,
    validate_env_policy,
)
from durableflow.model.records import RunRecord
from durableflow.runtime.env_capture import (
    capture_environment,
    fingerprint,
    function_key,
    innermost,
    installed_distributions,
    name_of,
    pickled_by_value,
    process_environment,
)
from durableflow.runtime.task_env import task_env_changes
from durableflow.storage import layout
from durableflow.storage.store import WorkflowStore

__all__ = [
    "capture_environment",
    "check_environment",
    "current_functions",
    "environment_diff",
    "expand_environment",
    "fingerprint",
    "function_key",
    "installed_distributions",
    "process_environment",
]

log = logging.getLogger("durableflow")

_read: dict[str, dict[str, str]] = {}
"""Package lists read back, by digest (content-addressed: they never change)."""


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
        if pickled_by_value(module, qualname) or "@" in qualname or "#" in qualname:
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
    task_envs = task_env_changes(store, workflow_id, recorded)
    if task_envs:
        diff = dataclasses.replace(diff, task_envs_changed=task_envs)
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
            key = ":".join(name_of(innermost(spec.func)))
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
        tasks = sorted(diff.task_envs_changed)
        raise EnvironmentMismatchError(
            message + " (env_policy='error'; use 'warn' or 'ignore' to resume anyway)",
            workflow_id=record.workflow_id,
            task_id=tasks[0] if len(tasks) == 1 else None,
            diff=diff,
        )
    warnings.warn(message, EnvironmentChangedWarning, stacklevel=4)
    return diff
