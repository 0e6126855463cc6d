"""Per-task runtime environments, resolved: recorded at submission, compared on resume.

A task's ``runtime_env`` option (:mod:`durableflow.runtime.isolated`) is stored with its spec,
so a resume runs it with the same option; what can differ is what the option *resolves to* on
the machine that resumes: the interpreter at that path was upgraded, ``python3`` is another one
on the ``PATH``, the working directory is elsewhere, or the workflow is a fork whose new DAG
(the fixed code) asks for other requirements. So the resolved environment is recorded, in the
run record beside the workflow's own environment (``runtime_env``, see
:mod:`durableflow.model.environment`), and compared on resume under the same policy:

1. at submission (:func:`record_task_envs`, called by
   :func:`~durableflow.runtime.env_capture.capture_environment`), each task of the submitted
   DAG with a ``runtime_env`` is resolved without building anything: its interpreter's path and
   version (asked once per binary and process), its sorted requirements and the key of the
   cached virtualenv they make, the **names** of its ``env_vars`` and a salted digest of their
   values (never the values: they are often secrets), its absolute ``working_dir``. Each
   distinct resolution is stored once (``resolved_task_envs``, by a digest of it) and each task
   points at its own (``task_env_digests``). An option that cannot be resolved is not recorded:
   the task fails with its ``RuntimeEnvError`` when it runs;
2. on resume (:func:`task_env_changes`, part of
   :func:`~durableflow.runtime.environment.environment_diff` and so of the policy check), each
   recorded task that will run again (it has no checkpoint) is resolved afresh from its stored
   spec (with the recorded digest's salt) and compared
   (:func:`~durableflow.model.environment.diff_task_env`); the changes name the task.

Old run records have neither key: nothing is compared for them. Tasks added later by a
continuation are not recorded (their specs are written as the workflow runs). The packages a
virtualenv holds are not listed: its key changes with its requirements and the interpreter's
exact version; pin versions in the requirements for a build to be reproducible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from durableflow.errors import RuntimeEnvError
from durableflow.model.dag import TaskSpec
from durableflow.model.environment import diff_task_env
from durableflow.runtime.isolated import (
    check_runtime_env,
    python_version,
    requirements_of,
    venv_key,
)
from durableflow.storage.store import WorkflowStore

__all__ = ["record_task_envs", "resolve_task_env", "task_env_changes"]

log = logging.getLogger("durableflow")


def _vars_digest(env_vars: Mapping[str, str], salt: str) -> str:
    canonical = json.dumps(sorted(env_vars.items()), separators=(",", ":"))
    return f"{salt}:{hashlib.sha256((salt + canonical).encode()).hexdigest()[:32]}"


def _interpreter(given: Any, task: str) -> tuple[str | None, str]:
    """``(absolute path or None for durableflow's own, sys.version)`` of a ``python`` option."""
    if not given:
        return None, sys.version
    base = str(given)
    found = shutil.which(base) or base
    if not os.path.exists(found):
        raise RuntimeEnvError(f"task {task!r}: runtime_env python {base!r} does not exist")
    return os.path.abspath(found), python_version(base, task)


def resolve_task_env(
    option: Any,
    task: str,
    salt: str,
    interpreters: dict[str, tuple[str | None, str]] | None = None,
) -> dict[str, Any]:
    """A task's ``runtime_env`` option resolved here, as it is recorded (step 1).

    Args:
        option: the option (``None`` or ``{}``: durableflow's own interpreter, nothing else).
        task: the task's id, for errors.
        salt: mixed into the digest of the ``env_vars`` values.
        interpreters: interpreters resolved already, by ``python`` option (one resolution for
            many tasks), filled as it goes.

    Raises:
        RuntimeEnvError: the option is malformed or its interpreter cannot be run.
    """
    env = check_runtime_env(option or {}, task)
    given = str(env.get("python") or "")
    if interpreters is None:
        interpreters = {}
    if given not in interpreters:
        interpreters[given] = _interpreter(given, task)
    path, version = interpreters[given]
    reqs = requirements_of(env, task)
    env_vars: Mapping[str, str] = env.get("env_vars") or {}
    working_dir = env.get("working_dir")
    return {
        "python": path,
        "python_version": version.split()[0] if version.split() else version,
        "requirements": reqs,
        "venv": venv_key(version, reqs)[0] if reqs else None,
        "env_vars": sorted(env_vars),
        "env_vars_digest": _vars_digest(env_vars, salt) if env_vars else None,
        "working_dir": os.path.abspath(os.fspath(working_dir)) if working_dir else None,
    }


def record_task_envs(specs: Iterable[TaskSpec]) -> dict[str, Any]:
    """Step 1: ``{"task_env_digests": ..., "resolved_task_envs": ...}``, or {} for no task."""
    salt = secrets.token_hex(8)
    resolved: dict[str, dict[str, Any]] = {}
    digests: dict[str, str] = {}
    seen: dict[str, str | None] = {}  # an option as text (in memory only) -> its digest
    interpreters: dict[str, tuple[str | None, str]] = {}
    for spec in specs:
        option = spec.options.executor_options.get("runtime_env")
        if option is None:
            continue
        try:
            text = json.dumps(option, sort_keys=True, default=repr)
        except (TypeError, ValueError):  # not a plain mapping: resolution says what is wrong
            text = repr(option)
        if text not in seen:  # a fan-out's tasks share a few options: each resolved once
            try:
                entry = resolve_task_env(option, spec.task_id, salt, interpreters)
            except RuntimeEnvError as err:  # reported when the task runs
                log.debug("task %r: runtime_env not recorded: %s", spec.task_id, err)
                seen[text] = None
                continue
            canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
            digest = hashlib.sha256(canonical).hexdigest()[:16]
            resolved[digest] = entry
            seen[text] = digest
        found = seen[text]
        if found is not None:
            digests[spec.task_id] = found
    if not digests:
        return {}
    return {"task_env_digests": digests, "resolved_task_envs": resolved}


def task_env_changes(
    store: WorkflowStore, workflow_id: str, recorded: Mapping[str, Any]
) -> dict[str, tuple[str, ...]]:
    """Step 2: ``task_id -> what changed`` for the recorded tasks that will run again."""
    digests: Mapping[str, str] = recorded.get("task_env_digests") or {}
    envs: Mapping[str, Any] = recorded.get("resolved_task_envs") or {}
    if not digests:
        return {}
    again = set(digests) - store.list_done(workflow_id)
    if not again:
        return {}
    try:
        batches = store.read_specs(workflow_id)
    except Exception as err:  # a missing module, a corrupt spec: the run will say so
        log.debug("workflow %r: specs not loaded to compare task envs: %s", workflow_id, err)
        return {}
    changes: dict[str, tuple[str, ...]] = {}
    interpreters: dict[str, tuple[str | None, str]] = {}
    for flat in batches.values():
        for spec in flat.specs:
            then = envs.get(digests.get(spec.task_id, "")) if spec.task_id in again else None
            if not isinstance(then, Mapping):
                continue
            salt = str(then.get("env_vars_digest") or "").partition(":")[0]
            option = spec.options.executor_options.get("runtime_env")
            try:
                now = resolve_task_env(option, spec.task_id, salt or "-", interpreters)
            except RuntimeEnvError as err:
                now = {"error": str(err)}
            lines = diff_task_env(then, now)
            if lines:
                changes[spec.task_id] = lines
    return changes
