"""What the dashboard reads that the Reader has no call for yet, each in one marked place.

Each reads through the Reader's public ``store`` / ``storage`` attributes, and is what
:class:`~durableflow.dashboard.source.Source` answers with:

- :func:`task_logs` -- the captured logs of a task's attempts (``LOGS HOOK``);
- :func:`live_workers` -- live workers and the workflows they hold (``WORKERS FALLBACK``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from durableflow.client import Reader
from durableflow.errors import WorkflowNotFoundError
from durableflow.model.status import WorkflowStatus

__all__ = ["live_workers", "task_logs"]

_WORKERS_PREFIX = "v1/workers/"  # WORKERS FALLBACK: storage layout v1, until Reader.live_workers


def task_logs(reader: Reader, workflow_id: str, task_id: str) -> list[dict[str, Any]] | None:
    """LOGS HOOK: the captured logs of each attempt of a task, or None if none are kept.

    Uses the read API of per-task log capture when this version has it
    (``Reader.get_logs(workflow_id, task_id=...)``, per-task log capture); each entry is
    ``{"attempt": n, "text": str, "truncated": bool, "start", "end"}``.
    """
    get_logs = getattr(reader, "get_logs", None)
    if get_logs is None:
        return None
    try:
        found = get_logs(workflow_id, task_id=task_id)
    except WorkflowNotFoundError:
        return None
    except Exception as err:  # logs are for display: never fail the page
        return [
            {
                "attempt": None,
                "text": f"the logs cannot be read: {type(err).__name__}: {err}",
                "truncated": False,
                "start": None,
                "end": None,
            }
        ]
    return _log_entries(found, task_id)


def _log_entries(found: Any, task_id: str) -> list[dict[str, Any]]:
    """What the logs API returns, as ``[{"attempt", "text", "truncated", "start", "end"}]``.

    ``Reader.get_logs`` answers ``{task_id: [AttemptLog, ...]}`` (oldest attempt first).
    """
    if isinstance(found, dict):
        found = found.get(task_id, [])
    entries = []
    for item in found or ():
        data = (
            dataclasses.asdict(item)
            if dataclasses.is_dataclass(item) and not isinstance(item, type)
            else item
        )
        if not isinstance(data, dict):
            data = {"text": str(data)}
        entries.append(
            {
                "attempt": data.get("attempt"),
                "text": str(data.get("text", "")),
                "truncated": bool(data.get("dropped") or data.get("truncated")),
                "start": data.get("start"),
                "end": data.get("end"),
            }
        )
    return entries


def live_workers(reader: Reader, clock: Callable[[], float]) -> list[dict[str, Any]]:
    """Live workers (``owner``, ``host``, ``pid``, ``expires_at``) and what they hold.

    WORKERS FALLBACK: reads the heartbeat records (storage layout v1) until the Reader
    has ``live_workers``; a heartbeat counts until its expiry. ``holds``: the RUNNING
    workflows whose lease this worker's owner id holds.
    """
    listed = getattr(reader, "live_workers", None)
    if listed is not None:
        workers: list[dict[str, Any]] = [dict(w) for w in listed()]
    else:
        workers = []
        storage = reader.storage
        now = clock()
        for key in storage.list(_WORKERS_PREFIX):
            raw = storage.get(key)
            if raw is None:
                continue
            try:
                data = json.loads(raw)
                expires = float(data["expires_at"])
            except (ValueError, KeyError, TypeError):
                continue
            if expires >= now:
                workers.append(
                    {
                        "owner": str(data.get("owner", "")),
                        "host": str(data.get("host", "")),
                        "pid": int(data.get("pid", 0)),
                        "expires_at": expires,
                    }
                )
    for worker in workers:
        worker.setdefault("holds", [])
    by_owner = {w["owner"]: w for w in workers}
    running, _ = reader.list_workflows(WorkflowStatus.RUNNING, limit=200)
    for row in running:
        try:
            lease, _raw = reader.store.read_lease(row.workflow_id)
        except Exception:
            continue
        if lease is not None and lease.owner in by_owner:
            by_owner[lease.owner]["holds"].append(row.workflow_id)
    return workers
