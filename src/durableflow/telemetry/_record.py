"""The trace record stored with a workflow: the trace and span ids of its traced runs.

Key ``trace`` of the workflow (:func:`trace_key`), JSON ``{"runs": [...]}``, the newest
``MAX_RUNS`` runs. The runner appends a run as it starts (holding the lease); the CLI and the
dashboard read it (:func:`read_traces`) to link a workflow to its traces.
"""

from __future__ import annotations

import json
from typing import Any

from durableflow.storage import layout
from durableflow.storage.base import Storage

__all__ = ["MAX_RUNS", "append_trace", "read_traces", "trace_key"]

MAX_RUNS = 50
"""Runs kept in a workflow's trace record (the newest)."""


def trace_key(workflow_id: str) -> str:
    """The workflow's trace record: the trace and span ids of its runs (JSON)."""
    return f"{layout.workflow_prefix(workflow_id)}trace"


def read_traces(storage: Storage, workflow_id: str) -> list[dict[str, Any]]:
    """The runs of a workflow that were traced, oldest first.

    Each: ``trace_id`` (32 hex digits), ``span_id`` (16), ``kind`` (``run`` or ``resume``),
    ``epoch`` and ``start`` (Unix time). Empty when no run was traced (or the record is
    garbled: it is for display only).

    Raises:
        StorageError: the storage failed.
    """
    raw = storage.get(trace_key(workflow_id))
    if raw is None:
        return []
    try:
        runs = json.loads(raw)["runs"]
        return [dict(run) for run in runs if isinstance(run, dict) and "trace_id" in run]
    except (ValueError, KeyError, TypeError):
        return []


def append_trace(storage: Storage, workflow_id: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Read the runs, add ``entry``; return the runs before it. The runner holds the lease."""
    before = read_traces(storage, workflow_id)
    data = json.dumps({"runs": [*before, entry][-MAX_RUNS:]}).encode()
    with storage.volatile():
        storage.put(trace_key(workflow_id), data)
    return before
