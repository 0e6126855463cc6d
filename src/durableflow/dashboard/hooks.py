"""The dashboard's answers about logs and workers, shaped for its pages, from the Reader.

:class:`~durableflow.dashboard.source.Source` answers with:

- :func:`task_logs` -- the captured logs of a task's attempts (``Reader.get_logs``);
- :func:`live_workers` -- live workers (``Reader.live_workers``) and the RUNNING workflows
  whose lease each one holds (``Reader.lease_owner``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from durableflow.client import Reader
from durableflow.errors import WorkflowError, WorkflowNotFoundError
from durableflow.model.status import WorkflowStatus

__all__ = ["live_workers", "task_logs"]


def task_logs(reader: Reader, workflow_id: str, task_id: str) -> list[dict[str, Any]] | None:
    """The captured logs of each attempt of a task, or None for an unknown workflow or task.

    Each entry is ``{"attempt": n, "text": str, "truncated": bool, "start", "end"}``; a storage
    that cannot be read gives one entry saying so (logs are for display: never fail the page).
    """
    try:
        found = reader.get_logs(workflow_id, task_id=task_id)
    except WorkflowNotFoundError:
        return None
    except Exception as err:
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


def live_workers(reader: Reader) -> list[dict[str, Any]]:
    """Live workers (``owner``, ``host``, ``pid``, ``expires_at``) and what they hold.

    ``holds``: the RUNNING workflows (the newest 200) whose lease this worker's owner id holds.
    """
    workers: list[dict[str, Any]] = [{**w, "holds": []} for w in reader.live_workers()]
    by_owner = {w["owner"]: w for w in workers}
    if not by_owner:
        return workers
    running, _ = reader.list_workflows(WorkflowStatus.RUNNING, limit=200)
    for row in running:
        try:
            lease = reader.lease_owner(row.workflow_id)
        except WorkflowError:
            continue
        if lease is not None and lease.owner in by_owner:
            by_owner[lease.owner]["holds"].append(row.workflow_id)
    return workers
