"""Settings from arguments and the environment."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_ENV_POLICY",
    "ENV_EXECUTOR",
    "ENV_RAY_STORAGE",
    "ENV_SIGNING_KEY",
    "ENV_STORAGE",
    "ClientSettings",
    "check_limits",
    "default_storage",
    "default_storage_dir",
    "env_policy_from_env",
    "executor_from_env",
    "executor_named_in_env",
    "signing_key_from_env",
    "storage_from_env",
]

ENV_STORAGE = "DURABLEFLOW_STORAGE"
ENV_RAY_STORAGE = "RAY_WORKFLOW_STORAGE"
ENV_SIGNING_KEY = "DURABLEFLOW_SIGNING_KEY"
ENV_EXECUTOR = "DURABLEFLOW_EXECUTOR"
ENV_ENV_POLICY = "DURABLEFLOW_ENV_POLICY"


def _data_dir() -> Path:
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "durableflow"


def default_storage_dir() -> Path:
    r"""The earlier default storage: a folder of the user's data directory.

    Linux: ``$XDG_DATA_HOME/durableflow/storage`` or ``~/.local/share/durableflow/storage``;
    macOS: ``~/Library/Application Support/durableflow/storage``; Windows:
    ``%LOCALAPPDATA%\\durableflow\\storage``. Still the default where it holds a store
    (:func:`default_storage`).
    """
    return _data_dir() / "storage"


def default_storage() -> str:
    """The default storage: one SQLite file in the user's data directory (not /tmp).

    ``sqlite://<data>/durableflow/workflows.db`` (the folder of :func:`default_storage_dir`),
    which commits with a group fsync and keeps the storage's guarantees on one machine. Where
    the earlier default folder holds a store already (``<data>/durableflow/storage/v1``), that
    folder stays the default, so an upgrade finds its workflows where they were.
    """
    legacy = default_storage_dir()
    if (legacy / "v1").is_dir():
        return str(legacy)
    return f"sqlite://{_data_dir() / 'workflows.db'}"


def storage_from_env() -> str:
    """``$DURABLEFLOW_STORAGE``, else ``$RAY_WORKFLOW_STORAGE``, else :func:`default_storage`."""
    return os.environ.get(ENV_STORAGE) or os.environ.get(ENV_RAY_STORAGE) or default_storage()


def signing_key_from_env() -> bytes | None:
    """``$DURABLEFLOW_SIGNING_KEY`` as bytes, or None when the variable is not set.

    Raises:
        ValueError: the variable is set but empty: an empty key would silently turn signing
            off, so it is refused (unset the variable to store values unsigned).
    """
    key = os.environ.get(ENV_SIGNING_KEY)
    if key is None:
        return None
    if not key:
        raise ValueError(
            f"signing key must not be empty: ${ENV_SIGNING_KEY} is set to ''; "
            "unset it to store values unsigned"
        )
    return key.encode()


def executor_from_env() -> str:
    """``$DURABLEFLOW_EXECUTOR`` (thread, process, ray), default thread."""
    return os.environ.get(ENV_EXECUTOR, "thread") or "thread"


def check_limits(max_running_workflows: int | None, max_pending_workflows: int | None) -> None:
    """Refuse a Client's workflow limits out of range, before anything is opened.

    Raises:
        ValueError: ``max_running_workflows`` not an int >= 1, or ``max_pending_workflows``
            not an int >= 0 (None: no limit).
    """
    for name, value, least in (
        ("max_running_workflows", max_running_workflows, 1),
        ("max_pending_workflows", max_pending_workflows, 0),
    ):
        if value is not None and (not isinstance(value, int) or value < least):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")


def executor_named_in_env() -> bool:
    """Whether ``$DURABLEFLOW_EXECUTOR`` names an executor (then the auto runner keeps it)."""
    return bool(os.environ.get(ENV_EXECUTOR))


def env_policy_from_env() -> str:
    """``$DURABLEFLOW_ENV_POLICY`` (ignore, warn, error), default warn."""
    return os.environ.get(ENV_ENV_POLICY, "warn") or "warn"


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """What opens a Client like another one, as plain data (picklable, no handles).

    ``Client.settings`` has the Client's own; the Ray runner sends them to the cluster's
    coordinator, which opens a Client like the driver's with them.
    """

    storage_url: str
    """The storage's URL (credentials are never in it)."""
    signing_key: bytes | None = dataclasses.field(repr=False)
    """The HMAC key stored values are signed with, or None (kept out of ``repr``)."""
    max_running_workflows: int | None
    max_pending_workflows: int | None
    lease_ttl: float
    """Seconds before a silent runner's workflow reads RESUMABLE on other hosts."""
    cancel_poll: float
    env_policy: str

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments of ``Client(self.storage_url, **options)``."""
        options = dataclasses.asdict(self)
        del options["storage_url"]
        return options
