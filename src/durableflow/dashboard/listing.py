"""Newest-first listing of a big storage, fast from the first request.

``Reader.list_workflows(newest_first=True)`` orders the workflows from the storage's creation
index (one listing) and reads the run records of the page's rows only; still, each call lists
the status index and the creation index and sorts every id. The dashboard lists the same
storage again and again, and filters by what the Reader does not (a root task name, an upper
time bound), so it keeps a **snapshot**:

1. one pass over the status index (``Reader.list_all``: id and status of every workflow, no run
   record read for a workflow at rest);
2. the creation time of each id not seen before, from one listing of the creation index (the
   Reader's ``store.list_created``); the run record of an id without an entry (a workflow
   stored before the index) is read (in parallel, 16 at a time); what never changes about a
   workflow is kept: when it was created and, once read, its root task; ids gone from the index
   are forgotten;
3. the ids sorted by ``(created_at, id)``: a new id is inserted in place (bisect), so a snapshot
   of a storage that gained a few workflows costs no new sort.

Root tasks (the name filter, the home page's runs per name) need every run record: they are
read in the background after the first snapshot, a chunk at a time, and at once by a request
that needs them before that is done.

A page walks the snapshot from the newest (or from the cursor) and keeps the rows that pass the
filters (statuses, id prefix, root task name, time range) until it has ``limit + 1``. A snapshot
older than ``max_age`` seconds is refreshed by the request that finds it so (others wait for
that refresh rather than start their own); while the dashboard is in use, :meth:`Listing.start`
keeps refreshing it in the background, so requests seldom wait. The first snapshot of a
storage costs two listings and a sort (the server starts it at startup); when none is taken
nor being taken, a first page that the Reader can answer (no cursor, no name or ``until``
filter) is the Reader's newest-first page.

A cursor is an opaque string: the ``(created_at, id)`` of the last row; rows created meanwhile
appear on the first page, not in the middle.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import fnmatch
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from durableflow.client import Reader
from durableflow.model.status import WorkflowStatus

__all__ = ["Listing", "Query", "Row", "Snapshot", "decode_cursor", "encode_cursor"]

MAX_LIMIT = 500
IDLE_AFTER = 60.0
"""Seconds without a request after which the background refresh pauses."""
ROOTS_CHUNK = 500
"""Run records the background reads between two looks at the requests (root tasks)."""


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


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The storage's workflows at ``taken`` (monotonic time)."""

    taken: float
    status: dict[str, WorkflowStatus]
    keys: list[tuple[float, str]]
    """``(created_at, id)`` of every workflow, ascending."""
    roots: dict[str, str | None]
    """Root task ids read so far (all of them once :attr:`complete`)."""
    complete: bool = True

    def newest_first(self, after: tuple[float, str] | None = None) -> Iterator[Row]:
        """Every row, newest first, after ``after`` (a cursor's key) if given."""
        end = len(self.keys) if after is None else bisect.bisect_left(self.keys, after)
        for i in range(end - 1, -1, -1):
            created, wid = self.keys[i]
            status = self.status.get(wid)
            if status is not None:
                yield Row(wid, status, created, self.roots.get(wid))


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
    """The newest-first listing of one storage (module docstring: the steps).

    Args:
        reader: the storage's Reader.
        max_age: seconds a snapshot serves requests before one refreshes it (0: every
            request lists the index).
        workers: run records read at once in step 2.
        clock: monotonic time, injected for tests.
    """

    def __init__(
        self,
        reader: Reader,
        max_age: float = 2.0,
        workers: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.max_age = max_age
        self.clock = clock
        self._created: dict[str, float] = {}
        self._roots: dict[str, str | None] = {}
        self._keys: list[tuple[float, str]] = []
        self._snapshot: Snapshot | None = None
        self._refreshing = threading.Lock()
        self._workers = workers
        self._last_use = clock()
        self._stop = threading.Event()
        self.warmed = threading.Event()

    # --- snapshots -------------------------------------------------------------------------
    def snapshot(self, max_age: float | None = None, *, roots: bool = False) -> Snapshot:
        """A snapshot at most ``max_age`` seconds old (default: the listing's).

        ``roots``: with every root task read (see the module docstring).
        """
        self._last_use = self.clock()
        limit = self.max_age if max_age is None else max_age
        current = self._snapshot
        if current is None or self.clock() - current.taken > limit:
            asked = self.clock()
            with self._refreshing:
                current = self._snapshot
                if current is None or current.taken < asked:
                    current = self.refresh()
        if roots and not current.complete:
            with self._refreshing:
                current = self._fill_roots(current, None)
        return current

    def refresh(self) -> Snapshot:
        """Steps 1 to 3 now (the caller holds ``_refreshing``, or is the only user)."""
        taken = self.clock()
        found = self.reader.list_all(None)
        status = dict(found)
        missing = [wid for wid, _ in found if wid not in self._created]
        fresh: list[tuple[float, str]] = []
        if missing:
            created = self.reader.store.list_created()
            unplaced = []
            for wid in missing:
                at = created.get(wid)
                if at is None:
                    unplaced.append(wid)
                else:
                    fresh.append((at, wid))
            self._created.update((wid, at) for at, wid in fresh)
            if unplaced:
                self._read(unplaced)
                fresh.extend((self._created[w], w) for w in unplaced if w in self._created)
        gone = [wid for wid in self._created if wid not in status]
        if gone:
            for wid in gone:
                del self._created[wid]
                self._roots.pop(wid, None)
            dead = set(gone)
            self._keys = [key for key in self._keys if key[1] not in dead]
        if fresh:
            fresh.sort()
            if not self._keys:
                self._keys = fresh
            elif len(fresh) > 1000:
                self._keys = sorted(self._keys + fresh)  # two sorted runs: one merge
            else:
                for key in fresh:
                    bisect.insort(self._keys, key)
        snap = Snapshot(
            taken=taken,
            status=status,
            keys=list(self._keys),
            roots=dict(self._roots),
            complete=self._all_roots(),
        )
        self._snapshot = snap
        self.warmed.set()
        return snap

    def _fill_roots(self, snap: Snapshot, most: int | None) -> Snapshot:
        """Read the root tasks ``snap`` lacks (at most ``most``; the caller holds the lock)."""
        lacking = [wid for wid in self._created if wid not in self._roots]
        self._read(lacking[:most] if most is not None else lacking)
        done = self._all_roots()
        filled = dataclasses.replace(snap, roots=dict(self._roots), complete=done)
        if self._snapshot is snap:
            self._snapshot = filled
        return filled

    def _all_roots(self) -> bool:
        return all(wid in self._roots for wid in self._created)

    def _read(self, ids: list[str]) -> None:
        """Read the run records of ``ids``: their creation times and root tasks."""
        store = self.reader.store

        def read(chunk: list[str]) -> dict[str, tuple[float | None, str | None]]:
            found: dict[str, tuple[float | None, str | None]] = {}
            for wid in chunk:
                try:
                    record = store.read_run(wid)
                except Exception:  # a garbled record: listed, as the oldest
                    found[wid] = (0.0, None)
                    continue
                if record is None:  # deleted meanwhile: the next pass forgets it
                    found[wid] = (None, None)
                else:
                    found[wid] = (float(record.created_at), record.root_task_id)
            return found

        size = max(1, min(500, len(ids) // self._workers + 1))
        chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
        if len(chunks) == 1:
            results = [read(chunks[0])]
        else:
            with ThreadPoolExecutor(min(self._workers, len(chunks))) as pool:
                results = list(pool.map(read, chunks))
        for part in results:
            for wid, (created, root) in part.items():
                if created is not None:
                    self._created.setdefault(wid, created)
                if wid in self._created:
                    self._roots[wid] = root

    def invalidate(self) -> None:
        """Make the next request take a new snapshot (after an action changed statuses)."""
        snap = self._snapshot
        if snap is not None:
            self._snapshot = dataclasses.replace(snap, taken=float("-inf"))

    def start(self) -> threading.Thread:
        """Take the first snapshot now, then keep it fresh while requests come (a thread)."""

        def run() -> None:
            while not self._stop.is_set():
                began = self.clock()
                if began - self._last_use <= IDLE_AFTER or self._snapshot is None:
                    try:
                        with self._refreshing:
                            snap = self.refresh()
                        while not snap.complete and not self._stop.is_set():
                            with self._refreshing:  # a chunk at a time: requests go between
                                snap = self._snapshot or snap
                                if 0 < self.max_age < self.clock() - snap.taken:
                                    snap = self.refresh()  # kept fresh meanwhile
                                snap = self._fill_roots(snap, ROOTS_CHUNK)
                    except Exception:  # the next request refreshes, or says why
                        pass
                took = self.clock() - began
                # at most half of one core, however slow a pass over the index is
                self._stop.wait(max(self.max_age / 2, 2 * took, 0.2))

        thread = threading.Thread(target=run, name="durableflow-ui-listing", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the background refresh."""
        self._stop.set()

    # --- queries ---------------------------------------------------------------------------
    def matching(self, query: Query, snap: Snapshot) -> Iterator[Row]:
        """The rows of ``snap`` that pass the query, newest first, from its cursor on."""
        after = decode_cursor(query.cursor) if query.cursor else None
        keys, status_of, roots = snap.keys, snap.status, snap.roots
        end = len(keys) if after is None else bisect.bisect_left(keys, after)
        if query.until is not None:  # skip the rows created at or after it, by bisection
            end = min(end, bisect.bisect_left(keys, (query.until, "")))
        statuses, prefix, since = query.statuses, query.prefix, query.since
        for i in range(end - 1, -1, -1):
            created, wid = keys[i]
            if since is not None and created < since:
                return  # newest first: every later row is older still
            status = status_of.get(wid)
            if status is None or (statuses is not None and status not in statuses):
                continue
            if prefix is not None and not wid.startswith(prefix):
                continue
            root = roots.get(wid)
            if query.matches_name(root):
                yield Row(wid, status, created, root)

    def select(self, query: Query, max_age: float | None = None) -> list[Row]:
        """Every row that passes the query's filters, newest first (no paging)."""
        return list(self.matching(query, self.snapshot(max_age, roots=query.name is not None)))

    def page(self, query: Query) -> tuple[list[Row], str | None]:
        """The page after the cursor and the next page's cursor (None: the last).

        Raises:
            ValueError: a bad cursor or limit.
        """
        if not 1 <= query.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {query.limit}")
        if query.cursor:
            decode_cursor(query.cursor)  # a bad one fails before any work
        elif (
            self._snapshot is None
            and not self._refreshing.locked()  # else the snapshot is near: it is cheaper
            and query.name is None
            and query.until is None
        ):
            return self._first_page(query)
        page: list[Row] = []
        for row in self.matching(query, self.snapshot(roots=query.name is not None)):
            page.append(row)
            if len(page) > query.limit:
                break
        more = len(page) > query.limit
        page = page[: query.limit]
        return page, (encode_cursor(page[-1]) if more and page else None)

    def _first_page(self, query: Query) -> tuple[list[Row], str | None]:
        """The first page from ``Reader.list_workflows(newest_first=True)``, before a snapshot.

        The next page's cursor is this listing's (it resumes in the snapshot).
        """
        found, more = self.reader.list_workflows(
            query.statuses, query.prefix, query.since, query.limit, newest_first=True
        )
        page = [
            Row(row.workflow_id, row.status, row.created_at, row.root_task_id)
            for row in found
            if row.created_at is not None
        ]
        return page, (encode_cursor(page[-1]) if more is not None and page else None)

    def rows(self, max_age: float | None = None) -> list[Row]:
        """Every workflow of a snapshot, newest first."""
        return list(self.snapshot(max_age).newest_first())
