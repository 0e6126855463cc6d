"""The runtime environment recorded with a workflow, and what changed since: pure comparison.

A recorded environment (``RunRecord.runtime_env``) is a JSON object::

    {"python": "3.11.7", "implementation": "CPython", "platform": "linux-x86_64",
     "durableflow": "0.1.0",
     "packages": {"numpy": "2.1.0", ...},                  # installed distributions
     "functions": {"mymod:step": "sha256:ab12...",         # task function -> source fingerprint
                   "__main__:<lambda>@run.py:12": "sha256:cd34..."},  # by value: with its place
     "task_runtime_envs": {"train": {"pip": [...],         # per-task runtime_env option,
                                     "env_vars": {"DB_PASSWORD": "<redacted>"}}},  # values hidden
     "task_env_digests": {"train": "9f2c..."},             # task -> its resolved environment
     "resolved_task_envs": {"9f2c...": {                   # each resolved environment once
         "python": None,                                   # the option's path; None: durableflow's
         "python_version": "3.11.7",
         "requirements": ["torch==1.13.1"],                # sorted
         "venv": "0c1d...",                                # key of the cached virtualenv, or None
         "env_vars": ["DB_PASSWORD"],                      # names only
         "env_vars_digest": "<salt>:<sha256 of salt, names and values>",
         "working_dir": "/abs/path"}}}

It is captured by :mod:`durableflow.runtime.environment`; this module only compares two of them
(:func:`diff_environments`; :func:`diff_task_env` for one task's resolved environment).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ENV_POLICIES",
    "REDACTED",
    "EnvironmentDiff",
    "diff_environments",
    "diff_task_env",
    "redact_executor_options",
    "redact_runtime_env",
    "validate_env_policy",
]

ENV_POLICIES = ("ignore", "warn", "error")
REDACTED = "<redacted>"
"""What a recorded environment variable's value reads as."""
_SCALARS = ("python", "implementation", "platform", "durableflow")


def redact_runtime_env(runtime_env: Any) -> Any:
    """A ``runtime_env`` option as it may be recorded: the values of its ``env_vars`` hidden.

    The variables' names are kept, each value becomes :data:`REDACTED`. A runtime_env that is
    not a mapping (an object of the executor's own type) is recorded by its type name only,
    since its ``repr`` may show the values.
    """
    if not isinstance(runtime_env, Mapping):
        return f"<{type(runtime_env).__name__}>"
    recorded = dict(runtime_env)
    env_vars = recorded.get("env_vars")
    if isinstance(env_vars, Mapping):
        recorded["env_vars"] = {str(name): REDACTED for name in env_vars}
    elif env_vars is not None:
        recorded["env_vars"] = REDACTED
    return recorded


def redact_executor_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Executor options (``num_cpus``, ``runtime_env``...) with their ``runtime_env`` redacted."""
    shown = dict(options)
    if "runtime_env" in shown:
        shown["runtime_env"] = redact_runtime_env(shown["runtime_env"])
    return shown


def validate_env_policy(policy: str) -> str:
    """Return ``policy`` (lowercased) if it is ignore, warn or error; else raise ValueError."""
    value = str(policy).strip().lower()
    if value not in ENV_POLICIES:
        raise ValueError(
            f"unknown environment policy {policy!r}; expected one of {', '.join(ENV_POLICIES)}"
        )
    return value


@dataclasses.dataclass(frozen=True)
class EnvironmentDiff:
    """What differs between a workflow's recorded environment and the current one."""

    workflow_id: str
    recorded: bool
    """False when the workflow has no recorded environment (nothing to compare)."""
    changed: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    """Python, implementation, platform or durableflow version: ``name -> (then, now)``."""
    packages_changed: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    """``package -> (recorded version, current version)``."""
    packages_added: dict[str, str] = dataclasses.field(default_factory=dict)
    """Installed now but not then: ``package -> version``."""
    packages_removed: dict[str, str] = dataclasses.field(default_factory=dict)
    """Installed then but not now: ``package -> recorded version``."""
    functions_changed: tuple[str, ...] = ()
    """Task functions (``module:qualname``) whose source differs from the recorded one."""
    functions_missing: dict[str, str] = dataclasses.field(default_factory=dict)
    """Task functions that cannot be imported now: ``function -> why``."""
    function_tasks: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """For changed or missing functions: the ids of the tasks that run them, when known."""
    task_envs_changed: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """Tasks that will run again whose ``runtime_env`` resolves differently now:
    ``task_id -> what changed`` (:func:`diff_task_env`)."""

    @property
    def is_empty(self) -> bool:
        """True when nothing differs (or nothing was recorded)."""
        return not (
            self.changed
            or self.packages_changed
            or self.packages_added
            or self.packages_removed
            or self.functions_changed
            or self.functions_missing
            or self.task_envs_changed
        )

    def lines(self) -> list[str]:
        """One human-readable line per difference."""
        out = [f"{name}: {old} -> {new}" for name, (old, new) in sorted(self.changed.items())]
        out += [
            f"package {name}: {old} -> {new}"
            for name, (old, new) in sorted(self.packages_changed.items())
        ]
        out += [
            f"package {name}: removed (was {old})"
            for name, old in sorted(self.packages_removed.items())
        ]
        out += [
            f"package {name}: added ({new})" for name, new in sorted(self.packages_added.items())
        ]
        out += [
            f"task function {name}{self._tasks(name)}: source changed"
            for name in self.functions_changed
        ]
        out += [
            f"task function {name}{self._tasks(name)}: cannot be imported ({why})"
            for name, why in sorted(self.functions_missing.items())
        ]
        out += [
            f"task {task_id!r} runtime_env {change}"
            for task_id, changes in sorted(self.task_envs_changed.items())
            for change in changes
        ]
        return out

    def _tasks(self, function: str) -> str:
        tasks = self.function_tasks.get(function)
        if not tasks:
            return ""
        shown = ", ".join(tasks[:5]) + (f" and {len(tasks) - 5} more" if len(tasks) > 5 else "")
        return f" (task{'s' if len(tasks) > 1 else ''} {shown})"

    def summary(self) -> str:
        """One line naming every difference (shortened past a few)."""
        lines = self.lines()
        if not lines:
            return "no changes"
        shown = "; ".join(lines[:8])
        return shown + (f"; and {len(lines) - 8} more" if len(lines) > 8 else "")

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "workflow_id": self.workflow_id,
            "recorded": self.recorded,
            "changed": {k: list(v) for k, v in self.changed.items()},
            "packages_changed": {k: list(v) for k, v in self.packages_changed.items()},
            "packages_added": dict(self.packages_added),
            "packages_removed": dict(self.packages_removed),
            "functions_changed": list(self.functions_changed),
            "functions_missing": dict(self.functions_missing),
            "function_tasks": {k: list(v) for k, v in self.function_tasks.items()},
            "task_envs_changed": {k: list(v) for k, v in self.task_envs_changed.items()},
            "identical": self.is_empty,
        }


def diff_environments(
    workflow_id: str,
    recorded: Mapping[str, Any],
    current: Mapping[str, Any],
    current_functions: Mapping[str, str] | None = None,
) -> EnvironmentDiff:
    """Compare a recorded environment with the current one.

    Args:
        workflow_id: the workflow the recorded environment belongs to.
        recorded: the ``runtime_env`` stored at submission.
        current: the environment of this process (same shape, without ``functions``).
        current_functions: for each recorded function that can be compared, its current
            fingerprint, or ``"!"`` followed by why it cannot be imported. Functions absent
            from the mapping are not compared (they were pickled by value, so the recorded
            code is the code that runs).
    """
    if not recorded:
        return EnvironmentDiff(workflow_id, recorded=False)
    changed = {
        name: (str(recorded.get(name)), str(current.get(name)))
        for name in _SCALARS
        if name in recorded and recorded.get(name) != current.get(name)
    }
    then: Mapping[str, str] = recorded.get("packages") or {}
    now: Mapping[str, str] = current.get("packages") or {}
    functions_changed: list[str] = []
    missing: dict[str, str] = {}
    for name, fingerprint in sorted((recorded.get("functions") or {}).items()):
        if current_functions is None or name not in current_functions:
            continue
        found = current_functions[name]
        if found.startswith("!"):
            missing[name] = found[1:]
        elif found != fingerprint:
            functions_changed.append(name)
    return EnvironmentDiff(
        workflow_id,
        recorded=True,
        changed=changed,
        packages_changed={
            k: (then[k], now[k]) for k in sorted(then) if k in now and then[k] != now[k]
        },
        packages_added={k: now[k] for k in sorted(now) if k not in then} if then else {},
        packages_removed={k: then[k] for k in sorted(then) if k not in now} if now else {},
        functions_changed=tuple(functions_changed),
        functions_missing=missing,
    )


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def diff_task_env(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[str, ...]:
    """What differs between a task's recorded resolved environment and the current one.

    Both are resolved environments (the module docstring's ``resolved_task_envs`` entries);
    ``current`` must hash its ``env_vars`` with the salt of ``recorded``'s digest. One line per
    difference; the virtualenv key is named only when no other line explains it (a new build
    of the same Python version). Fields missing from ``recorded`` are not compared.
    """
    if "error" in current:
        return (f"cannot be resolved now: {current['error']}",)
    out: list[str] = []
    for name in ("python", "python_version", "requirements", "working_dir"):
        if name in recorded and recorded.get(name) != current.get(name):
            out.append(f"{name}: {_shown(recorded.get(name))} -> {_shown(current.get(name))}")
    if "env_vars" in recorded:
        then, now = set(recorded.get("env_vars") or ()), set(current.get("env_vars") or ())
        if then != now:
            added, removed = sorted(now - then), sorted(then - now)
            parts = [f"added {', '.join(added)}"] if added else []
            parts += [f"removed {', '.join(removed)}"] if removed else []
            out.append(f"env_vars: {'; '.join(parts)}")
        elif recorded.get("env_vars_digest") != current.get("env_vars_digest"):
            out.append("env_vars: values changed (not shown: they may be secrets)")
    if not out and "venv" in recorded and recorded.get("venv") != current.get("venv"):
        out.append(f"virtualenv: {_shown(recorded.get('venv'))} -> {_shown(current.get('venv'))}")
    return tuple(out)
