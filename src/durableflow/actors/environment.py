"""The environment recorded with an actor, and the check of a caller's against it.

Recorded at creation and by ``upgrade_actor``: Python, implementation, platform, the durableflow
version, the installed packages (by digest: the list is stored once, content-addressed, shared
with workflows) and the class: ``module:qualname`` with a fingerprint of its source.

Checked when a handle is opened with a class in hand (``get_or_create``, ``create``,
``get_actor`` of a class importable by its name, a worker loading one): the class source and
the environment are compared with the recorded ones, and the Client's environment policy
decides, as on a workflow's resume -- ``ignore``, ``warn`` (an ``EnvironmentChangedWarning``
naming every change) or ``error`` (``EnvironmentMismatchError``). A class stored by value
(defined in ``__main__``) runs the recorded code, so its source is not compared.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

from durableflow.errors import EnvironmentChangedWarning, EnvironmentMismatchError
from durableflow.model.environment import diff_environments, validate_env_policy
from durableflow.runtime.environment import expand_environment, fingerprint, process_environment
from durableflow.storage import layout
from durableflow.storage.store import WorkflowStore

__all__ = ["check_actor_environment", "class_path", "environment_changes", "record_environment"]

_SCALARS = ("python", "implementation", "platform", "durableflow")


def class_path(cls: type) -> str:
    """``module:qualname`` of a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def record_environment(store: WorkflowStore, cls: type) -> dict[str, Any]:
    """The environment to record for an actor of ``cls`` (stores the package list once)."""
    current = process_environment()
    digest = current["packages_digest"]
    data = json.dumps(current["packages"], sort_keys=True, separators=(",", ":")).encode()
    store.storage.create(layout.environment_key(digest), data)  # False: stored already
    env: dict[str, Any] = {name: current[name] for name in _SCALARS}
    env["packages_digest"] = digest
    env["package_count"] = len(current["packages"])
    env["class"] = {class_path(cls): fingerprint(cls)}
    return env


def environment_changes(
    store: WorkflowStore,
    actor_id: str,
    recorded: Mapping[str, Any],
    cls: type | None,
) -> list[str]:
    """One line per difference between ``recorded`` and this process (``cls``: the code here).

    ``cls`` None: the recorded class runs (stored by value), its source is not compared.
    """
    if not recorded:
        return []
    current = process_environment()
    plain = {k: v for k, v in recorded.items() if k != "class"}
    if plain.get("packages_digest") == current["packages_digest"]:
        full = {**plain, "packages": current["packages"]}
    else:
        full = expand_environment(store, plain)
    lines = diff_environments(actor_id, full, current).lines()
    if cls is not None:
        for path, then in (recorded.get("class") or {}).items():
            now = fingerprint(cls)
            if path != class_path(cls):
                lines.append(f"actor class: {path} -> {class_path(cls)}")
            elif then != now and "unavailable" not in (then, now):
                lines.append(f"actor class {path}: source changed")
    return lines


def check_actor_environment(
    store: WorkflowStore,
    actor_id: str,
    recorded: Mapping[str, Any],
    cls: type | None,
    policy: str,
) -> list[str]:
    """Apply the environment policy to a caller of actor ``actor_id``; the differences found.

    Raises:
        EnvironmentMismatchError: policy ``error`` and something differs.
    """
    policy = validate_env_policy(policy)
    if policy == "ignore":
        return []
    lines = environment_changes(store, actor_id, recorded, cls)
    if not lines:
        return lines
    shown = "; ".join(lines[:8]) + (f"; and {len(lines) - 8} more" if len(lines) > 8 else "")
    message = f"actor {actor_id!r} is called from a changed environment: {shown}"
    if policy == "error":
        raise EnvironmentMismatchError(
            message + " (env_policy='error'; run workflow.upgrade_actor(actor_id) or "
            "`durableflow actor upgrade ID` to record this code as the actor's)",
            workflow_id=actor_id,
        )
    warnings.warn(message, EnvironmentChangedWarning, stacklevel=4)
    return lines
