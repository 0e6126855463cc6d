"""Listings of the workflows of a storage: one pass over the status index, paged.

:func:`list_workflows` answers ``Reader.list_workflows`` (and ``durableflow list``) and
:func:`waiting_for_runner` tells workers what to run. Both start with one
:func:`~durableflow.runtime.status.scan_index`: a listing per status and one of the dirty
markers; the run record (and lease) is read only for active entries and dirty markers. What
is read beyond that depends on what is asked:

- ids and statuses, by id (the default): nothing more, however big the storage;
- ``times=True``: the run record of each row returned (``limit`` reads for a page);
- ``since``: the run record of each candidate, in id order, until the page is full;
- ``newest_first=True``: one listing more, of the creation index
  (:mod:`durableflow.storage._creation`), which orders the candidates by creation time, then
  the run record of each row returned. A candidate without its own entry (stored by a version
  before the index, or an id near 255 bytes) is read from its run record to be placed, as
  every candidate was before; each row's record is checked against its entry, and a mismatch
  (an entry left by an older version's delete) makes the page fall back to reading every
  candidate.

A cursor is an opaque string that resumes a listing after the last row of its page, in the
same order; workflows created or deleted meanwhile appear or vanish as they would in a new
listing. A cursor may lead to an empty last page.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import heapq
import itertools
import json
import operator
from collections.abc import Iterable, Iterator
from typing import Any

from durableflow.model.info import WorkflowSummary, visible_end_time
from durableflow.model.records import RunRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.runtime.status import collector_paused, effective_status, index_pass, scan_index
from durableflow.storage.store import WorkflowStore

__all__ = ["list_workflows", "waiting_for_runner"]

_BY_ID = "id"
_NEWEST = "newest"


def _encode(order: str, key: Any) -> str:
    raw = json.dumps([order, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str | None, order: str) -> Any:
    """The key a cursor resumes after, or None for the first page.

    Raises:
        ValueError: the cursor was not given by a listing in this order.
    """
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, key = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise ValueError(f"not a cursor of list_workflows: {cursor!r}") from None
    if kind != order:
        raise ValueError("this cursor is from a listing in another order (newest_first)")
    if order == _NEWEST:
        if not (isinstance(key, list) and len(key) == 2):
            raise ValueError(f"not a cursor of list_workflows: {cursor!r}")
        return (float(key[0]), str(key[1]))
    return str(key)


def _summary(workflow_id: str, status: WorkflowStatus, record: RunRecord | None) -> WorkflowSummary:
    if record is None:
        return WorkflowSummary(workflow_id, status)
    return WorkflowSummary(
        workflow_id,
        status,
        created_at=record.created_at,
        start_time=record.start_time,
        end_time=visible_end_time(status, record.end_time),
        root_task_id=record.root_task_id,
    )


def list_workflows(
    store: WorkflowStore,
    wanted: frozenset[WorkflowStatus] | None = None,
    *,
    prefix: str | None = None,
    since: float | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    times: bool = False,
    newest_first: bool = False,
) -> tuple[list[WorkflowSummary], str | None]:
    """A page of workflows and the cursor of the next page (None: this was the last).

    Args:
        store: the workflow store.
        wanted: only these statuses (None: all).
        prefix: only ids that start with it.
        since: only workflows created at or after this Unix time (reads run records).
        limit: at most this many rows (None: all).
        cursor: the ``next_cursor`` of the previous page.
        times: fill each row's times (one run record read per row).
        newest_first: order by creation time, newest first, instead of by id (from the
            creation index; rows carry their times).

    Raises:
        ValueError: ``limit`` below 1, or a cursor this listing did not give.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    order = _NEWEST if newest_first else _BY_ID
    after = _decode(cursor, order)
    with collector_paused():  # many rows built at once: see status.collector_paused
        return _page(store, wanted, prefix, since, limit, after, times, newest_first)


def _page(
    store: WorkflowStore,
    wanted: frozenset[WorkflowStatus] | None,
    prefix: str | None,
    since: float | None,
    limit: int | None,
    after: Any,
    times: bool,
    newest_first: bool,
    use_index: bool = True,
) -> tuple[list[WorkflowSummary], str | None]:
    """One page (see :func:`list_workflows`); ``use_index`` False: no creation index."""
    order = _NEWEST if newest_first else _BY_ID
    records: dict[str, RunRecord | None]
    candidates: Iterable[tuple[str, WorkflowStatus]]
    placed: dict[str, float] = {}  # creation times of the creation index
    scanned: frozenset[str] = frozenset()  # ids the scan read: their records place them
    if newest_first:
        found = scan_index(store, wanted, prefix)
        records = {w: r for w, (_, r) in found.items() if r is not None}
        scanned = frozenset(records)
        if use_index:
            placed = store.list_created()
    else:
        candidates, records = _by_id(store, wanted, prefix, after, lazy=limit is not None)

    def record_of(workflow_id: str) -> RunRecord | None:
        if workflow_id not in records:
            records[workflow_id] = store.read_run(workflow_id)  # None: deleted meanwhile
        return records[workflow_id]

    if newest_first:
        keyed: list[tuple[float, str]] = []
        for workflow_id in found:
            created_at = None if workflow_id in scanned else placed.get(workflow_id)
            if created_at is None:
                read = record_of(workflow_id)
                if read is None:
                    continue
                created_at = read.created_at
            keyed.append((created_at, workflow_id))
        if since is not None:  # older ones are not read: each row's time is checked below
            keyed = [item for item in keyed if item[0] >= since]
        keyed.sort(reverse=True)
        if after is not None:
            keyed = [item for item in keyed if item < after]
        candidates = ((w, found[w][0]) for _, w in keyed)  # a page reads only its rows
    rows: list[WorkflowSummary] = []
    more = False
    for workflow_id, listed in candidates:
        if limit is not None and len(rows) >= limit:
            more = True
            break
        status = listed
        record: RunRecord | None = None
        if times or newest_first or since is not None:
            record = record_of(workflow_id)
            if record is None:
                continue
            if (
                placed
                and workflow_id not in scanned
                and record.created_at != placed.get(workflow_id, record.created_at)
            ):
                # An entry left by an older version's delete: read every candidate instead.
                return _page(store, wanted, prefix, since, limit, after, times, True, False)
            if since is not None and record.created_at < since:
                continue
            if record.status is not status and status not in ACTIVE:
                # Changed since its index entry was listed: the record is newer.
                status = effective_status(store, record)
                if wanted is not None and status not in wanted:
                    continue
        rows.append(_summary(workflow_id, status, record))
    if not more or not rows:
        return rows, None
    last = rows[-1]
    key: Any = last.workflow_id
    if newest_first:
        key = [last.created_at, last.workflow_id]
    return rows, _encode(order, key)


def _by_id(
    store: WorkflowStore,
    wanted: frozenset[WorkflowStatus] | None,
    prefix: str | None,
    after: str | None,
    *,
    lazy: bool,
) -> tuple[Iterable[tuple[str, WorkflowStatus]], dict[str, RunRecord | None]]:
    """``(id, status)`` in id order after ``after``, and the run records the pass read.

    Each status's ids come sorted from the index: the rows after the cursor start at a
    bisection of each, and the statuses are merged lazily when a page is asked for (``lazy``:
    a page of 50 costs the listing, not a sort of every id), sorted at once otherwise.
    """
    at_rest, checked = index_pass(store, wanted, prefix)
    runs: list[Iterator[tuple[str, WorkflowStatus]]] = []
    for status, ids in at_rest.items():
        start = bisect.bisect_right(ids, after) if after is not None else 0
        runs.append(zip(itertools.islice(ids, start, None), itertools.repeat(status)))
    runs.append(
        iter(
            sorted(
                (w, status)
                for w, (status, _) in checked.items()
                if (wanted is None or status in wanted) and (after is None or w > after)
            )
        )
    )
    records: dict[str, RunRecord | None] = {w: record for w, (_, record) in checked.items()}
    if lazy:
        return heapq.merge(*runs, key=operator.itemgetter(0)), records
    rows = list(itertools.chain.from_iterable(runs))
    rows.sort(key=operator.itemgetter(0))
    return rows, records


def waiting_for_runner(
    store: WorkflowStore, include_resumable: bool, skip: frozenset[str] = frozenset()
) -> list[str]:
    """Workflows a worker may run, oldest first: PENDING with no owner, and RESUMABLE ones.

    A PENDING workflow whose lease is held is queued inside another process, or being
    submitted: it is left to that process.

    Args:
        store: the workflow store.
        include_resumable: list RESUMABLE workflows too.
        skip: ids left out before anything about them is read (run here, or backing off).
    """
    wanted = {WorkflowStatus.PENDING} | ({WorkflowStatus.RESUMABLE} if include_resumable else set())
    found: list[tuple[float, str]] = []
    for workflow_id, (status, record) in scan_index(store, frozenset(wanted)).items():
        if workflow_id in skip:
            continue
        if status is WorkflowStatus.PENDING and store.read_lease(workflow_id)[1] is not None:
            continue
        if record is None:
            record = store.read_run(workflow_id)
        if record is not None:
            found.append((record.created_at, workflow_id))
    found.sort()
    return [workflow_id for _, workflow_id in found]
