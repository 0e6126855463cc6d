"""Newest-first listing of a big storage, fast after the first pass.

No index of the storage holds times, so ``Reader.list_workflows(newest_first=True)`` reads the
run record of every candidate on every call (100,000 reads on a storage of 100,000 workflows).
The dashboard lists the same storage again and again, so it keeps what never changes about a
workflow -- when it was created and its root task -- in memory:

1. every listing starts with one pass over the status index (``Reader.list_workflows`` by id,
   no run record read for a workflow at rest);
2. the run record of each id not seen before is read once (in parallel, 16 at a time), its
   ``created_at`` and ``root_task_id`` kept; ids gone from the index are forgotten;
3. the candidates are filtered (statuses, id prefix, root task name, time range), sorted newest
   first (ties by id), and the page after the cursor is cut.

The first listing of a storage pays step 2 for every workflow (:meth:`Listing.warm` does it in
the background when the server starts); later ones only for new workflows. A cursor is an
opaque string: the ``(created_at, id)`` of the last row; rows created meanwhile appear on the
first page, not in the middle.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import fnmatch
import json
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from durableflow.client import Reader
from durableflow.model.status import WorkflowStatus

__all__ = ["Listing", "Query", "Row", "decode_cursor", "encode_cursor"]

MAX_LIMIT = 500


@dataclasses.dataclass(frozen=True)
class Query:
    """What a list page asks for."""

    statuses: frozenset[WorkflowStatus] | None = None
    prefix: str | None = None
    name: str | None = None
    """Root task name: a substring, or a glob when it has ``*``, ``?`` or ``[``."""
    since: float | None = None
    until: float | None = None
    limit: int = 50
    cursor: str | None = None

    def matches_name(self, root: str | None) -> bool:
        """Whether a root task id passes the name filter."""
        if self.name is None:
            return True
        if root is None:
            return False
        if any(c in self.name for c in "*?["):
            return fnmatch.fnmatchcase(root, self.name) or fnmatch.fnmatchcase(
                root.rsplit(".", 1)[-1], self.name
            )
        return self.name.lower() in root.lower()


@dataclasses.dataclass(frozen=True)
class Row:
    """One workflow of a listing: what the index and the kept facts say."""

    workflow_id: str
    status: WorkflowStatus
    created_at: float
    root_task_id: str | None


def encode_cursor(row: Row) -> str:
    """The cursor that resumes after ``row``."""
    raw = json.dumps([row.created_at, row.workflow_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """``(created_at, workflow_id)`` of a cursor.

    Raises:
        ValueError: not a cursor of this listing.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, wid = json.loads(raw)
        return float(created), str(wid)
    except (ValueError, TypeError, binascii.Error):
        raise ValueError(f"not a cursor of the workflow listing: {cursor!r}") from None


class Listing:
    """The newest-first listing of one storage (module docstring: the steps)."""

    def __init__(self, reader: Reader, workers: int = 16) -> None:
        self.reader = reader
        self._facts: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()
        self._workers = workers
        self.warmed = threading.Event()

    def warm(self) -> threading.Thread:
        """Read the facts of every workflow in a background thread (step 2 for all)."""

        def run() -> None:
            try:
                self.scan(None)
            finally:
                self.warmed.set()

        thread = threading.Thread(target=run, name="durableflow-ui-warm", daemon=True)
        thread.start()
        return thread

    def scan(
        self, statuses: Iterable[WorkflowStatus] | None, prefix: str | None = None
    ) -> list[Row]:
        """Steps 1 and 2: every workflow of these statuses, with its kept facts (any order)."""
        summaries, _ = self.reader.list_workflows(
            None if statuses is None else frozenset(statuses), prefix=prefix
        )
        with self._lock:
            missing = [s.workflow_id for s in summaries if s.workflow_id not in self._facts]
        if missing:
            self._read(missing)
        rows = []
        with self._lock:
            if statuses is None and prefix is None:
                present = {s.workflow_id for s in summaries}
                for gone in [w for w in self._facts if w not in present]:
                    del self._facts[gone]
            for summary in summaries:
                facts = self._facts.get(summary.workflow_id)
                if facts is None:
                    continue  # deleted between the index pass and the record read
                rows.append(Row(summary.workflow_id, summary.status, facts[0], facts[1]))
        return rows

    def _read(self, ids: list[str]) -> None:
        store = self.reader.store

        def read(chunk: list[str]) -> dict[str, tuple[float, str | None]]:
            found: dict[str, tuple[float, str | None]] = {}
            for wid in chunk:
                try:
                    record = store.read_run(wid)
                except Exception:
                    found[wid] = (0.0, None)
                    continue
                if record is not None:
                    found[wid] = (float(record.created_at), record.root_task_id)
            return found

        size = max(1, min(500, len(ids) // self._workers + 1))
        chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
        if len(chunks) == 1:
            results = [read(chunks[0])]
        else:
            with ThreadPoolExecutor(min(self._workers, len(chunks))) as pool:
                results = list(pool.map(read, chunks))
        with self._lock:
            for found in results:
                self._facts.update(found)

    def select(self, query: Query) -> list[Row]:
        """Every row that passes the query's filters, newest first (no paging)."""
        rows = [
            row
            for row in self.scan(query.statuses, query.prefix)
            if query.matches_name(row.root_task_id)
            and (query.since is None or row.created_at >= query.since)
            and (query.until is None or row.created_at < query.until)
        ]
        rows.sort(key=lambda r: (r.created_at, r.workflow_id), reverse=True)
        return rows

    def page(self, query: Query) -> tuple[list[Row], str | None]:
        """Step 3: the page after the cursor and the next page's cursor (None: the last).

        Raises:
            ValueError: a bad cursor or limit.
        """
        if not 1 <= query.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {query.limit}")
        after = decode_cursor(query.cursor) if query.cursor else None
        rows = self.select(query)
        if after is not None:
            created, wid = after
            rows = [
                r
                for r in rows
                if r.created_at < created or (r.created_at == created and r.workflow_id < wid)
            ]
        page = rows[: query.limit]
        more = len(rows) > query.limit
        return page, (encode_cursor(page[-1]) if more and page else None)

    def facts(self) -> dict[str, tuple[float, str | None]]:
        """A copy of the kept facts: ``id -> (created_at, root_task_id)``."""
        with self._lock:
            return dict(self._facts)
