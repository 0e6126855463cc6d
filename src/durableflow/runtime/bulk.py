"""Bulk actions by filter: select the matching workflows, act on each, report every failure.

:func:`select` finds the ids a :class:`~durableflow.model.filters.WorkflowFilter` matches,
from the status index first (one listing per status, :func:`~durableflow.runtime.status.
scan_index`), reading a run record only when the filter needs one (``name``, ``older_than``)
and the root spec batch only for ``name``. The actions run the Client's own calls (``cancel``,
``delete``, ``resume``: their protocols, leases and fences) on a bounded pool of threads
(:func:`~durableflow.runtime.run_queue.run_bounded`); one workflow that fails never stops the
others, and :class:`BulkResult` says which failed and why.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, wait
from typing import Any, Protocol

from durableflow.errors import CheckpointCorruptError, SerializationError
from durableflow.model.filters import AgeArg, StatusArg, WorkflowFilter, matches
from durableflow.model.records import RunRecord
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.runtime.run_queue import run_bounded
from durableflow.runtime.status import scan_index, workflow_info
from durableflow.storage import layout
from durableflow.storage.store import WorkflowStore

__all__ = [
    "BulkResult",
    "Workflows",
    "act_on",
    "cancel_all",
    "delete_all",
    "resume_all",
    "select",
    "select_statuses",
]

DEFAULT_WORKERS = 8


class Workflows(Protocol):
    """What the bulk actions need of a Client."""

    store: WorkflowStore

    def cancel(self, workflow_id: str, timeout: float = 30.0) -> None: ...  # noqa: D102

    def delete(self, workflow_id: str) -> None: ...  # noqa: D102

    def resume(self, workflow_id: str) -> Any: ...  # noqa: D102


@dataclasses.dataclass
class BulkResult:
    """What a bulk call did."""

    selected: list[str]
    """The ids the filter matched."""
    acted: list[str] = dataclasses.field(default_factory=list)
    """The ids acted on successfully (none on a dry run)."""
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    """Id -> why it failed (``ExceptionType: message``)."""
    dry_run: bool = False
    futures: dict[str, Future[Any]] = dataclasses.field(default_factory=dict)
    """``resume_all``: the future of each resumed run."""

    def summary(self) -> str:
        """One line, then one per kind of failure with a count and an example id."""
        verb = "would act on" if self.dry_run else "acted on"
        counts = f"{len(self.selected)} matched, {verb} {len(self.acted)}"
        lines = [f"{counts}, {len(self.failed)} failed"]
        kinds: dict[str, list[str]] = collections.defaultdict(list)
        for workflow_id, why in self.failed.items():
            kinds[why.partition(":")[0]].append(workflow_id)
        for kind, ids in sorted(kinds.items()):
            lines.append(f"  {kind}: {len(ids)} (e.g. {ids[0]}: {self.failed[ids[0]]})")
        return "\n".join(lines)


def _root_name(store: WorkflowStore, record: RunRecord) -> str | None:
    """The root task's name from the root spec batch; None if it cannot be read here."""
    key = layout.spec_key(record.workflow_id, layout.ROOT_BATCH)
    raw = store.storage.get(key)
    if raw is None:
        return None
    try:
        flat = store.serializer.loads(raw, key=key)
    except (SerializationError, CheckpointCorruptError):
        return None
    for spec in flat.specs:
        if spec.task_id == record.root_task_id:
            return str(spec.name)
    return None


def select(store: WorkflowStore, flt: WorkflowFilter, now: float | None = None) -> list[str]:
    """Ids of the workflows ``flt`` matches, sorted (see :func:`select_statuses`)."""
    return [workflow_id for workflow_id, _ in select_statuses(store, flt, now)]


def select_statuses(
    store: WorkflowStore, flt: WorkflowFilter, now: float | None = None
) -> list[tuple[str, WorkflowStatus]]:
    """``[(workflow_id, effective status)]`` of the workflows ``flt`` matches, sorted by id.

    Costs one :func:`scan_index` (status and prefix are decided there), plus one run record
    read per candidate when ``older_than`` or ``name`` is set, plus one root spec read per
    candidate for ``name``.
    """
    now = time.time() if now is None else now
    found = scan_index(store, flt.status, flt.prefix)
    if not flt.needs_record:
        return sorted((w, status) for w, (status, _) in found.items())
    rows = []
    for workflow_id, (status, record) in sorted(found.items()):
        if record is None:
            try:
                record = store.read_run(workflow_id)
            except CheckpointCorruptError:
                continue
            if record is None:
                continue  # deleted meanwhile
        info = workflow_info(store, record, status=status)
        if flt.name is not None:
            info = dataclasses.replace(info, name=_root_name(store, record))
        if matches(info, flt, now):
            rows.append((workflow_id, status))
    return rows


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def act_on(
    ids: Iterable[str],
    action: Callable[[str], Any],
    *,
    workers: int = DEFAULT_WORKERS,
    on_done: Callable[[str], object] | None = None,
) -> BulkResult:
    """Run ``action(id)`` for each id on at most ``workers`` threads and wait for all.

    A failing action is recorded in :attr:`BulkResult.failed` and does not stop the others;
    ``on_done(id)`` is called as each ends (progress).
    """
    handles: list[tuple[str, Future[Any]]] = [(w, Future()) for w in ids]
    result = BulkResult([w for w, _ in handles])

    def act(workflow_id: str) -> Any:
        try:
            return action(workflow_id)
        finally:
            if on_done is not None:
                on_done(workflow_id)

    if handles:
        run_bounded(handles, act, max(1, workers))
        wait([future for _, future in handles])
    for workflow_id, future in handles:
        err = future.exception()
        if err is None:
            result.acted.append(workflow_id)
        else:
            result.failed[workflow_id] = _why(err)
    return result


def _filter(
    status: StatusArg,
    default: frozenset[WorkflowStatus],
    prefix: str | None,
    name: str | None,
    older_than: AgeArg,
) -> WorkflowFilter:
    flt = WorkflowFilter.of(status=status, prefix=prefix, name=name, older_than=older_than)
    return flt if flt.status is not None else dataclasses.replace(flt, status=default)


def cancel_all(
    client: Workflows,
    *,
    status: StatusArg = None,
    prefix: str | None = None,
    name: str | None = None,
    older_than: AgeArg = None,
    now: float | None = None,
    dry_run: bool = False,
    workers: int = DEFAULT_WORKERS,
    timeout: float = 30.0,
    on_done: Callable[[str], object] | None = None,
) -> BulkResult:
    """Cancel the matching workflows (default status: every one not finished)."""
    default = frozenset(WorkflowStatus) - {WorkflowStatus.SUCCESSFUL, WorkflowStatus.CANCELED}
    flt = _filter(status, default, prefix, name, older_than)
    ids = select(client.store, flt, now)
    if dry_run:
        return BulkResult(ids, dry_run=True)
    return act_on(ids, lambda w: client.cancel(w, timeout), workers=workers, on_done=on_done)


def delete_all(
    client: Workflows,
    *,
    status: StatusArg = None,
    prefix: str | None = None,
    name: str | None = None,
    older_than: AgeArg = None,
    now: float | None = None,
    dry_run: bool = False,
    workers: int = DEFAULT_WORKERS,
    on_done: Callable[[str], object] | None = None,
) -> BulkResult:
    """Delete the matching workflows (default status: every one not RUNNING or PENDING).

    An active one that ``status`` names fails with WorkflowStillActiveError, in ``failed``.
    """
    flt = _filter(status, frozenset(WorkflowStatus) - ACTIVE, prefix, name, older_than)
    ids = select(client.store, flt, now)
    if dry_run:
        return BulkResult(ids, dry_run=True)
    return act_on(ids, client.delete, workers=workers, on_done=on_done)


def resume_all(
    client: Workflows,
    *,
    include_failed: bool = False,
    status: StatusArg = None,
    prefix: str | None = None,
    name: str | None = None,
    older_than: AgeArg = None,
    now: float | None = None,
    dry_run: bool = False,
    workers: int = DEFAULT_WORKERS,
    wait_for_runs: bool = True,
) -> BulkResult:
    """Resume the matching RESUMABLE (and, with ``include_failed``, FAILED) workflows.

    ``status`` narrows those two further. With ``wait_for_runs`` (default) this returns once
    every run ended: ``acted`` holds the ones that finished SUCCESSFUL, ``failed`` the others
    and why (a task's error included). Without, it returns at once; ``futures`` has each run.
    """
    resumable = {WorkflowStatus.RESUMABLE} | ({WorkflowStatus.FAILED} if include_failed else set())
    flt = _filter(status, frozenset(resumable), prefix, name, older_than)
    flt = dataclasses.replace(flt, status=(flt.status or frozenset()) & resumable)
    ids = select(client.store, flt, now)
    if dry_run:
        return BulkResult(ids, dry_run=True)
    if wait_for_runs:
        return act_on(ids, client.resume, workers=workers)
    handles: list[tuple[str, Future[Any]]] = [(w, Future()) for w in ids]
    if handles:
        run_bounded(handles, client.resume, max(1, workers))
    return BulkResult(ids, acted=list(ids), futures=dict(handles))
