"""Retention: a policy stored in storage, and ``prune`` that applies it (or a filter) once.

The policy (key ``v1/retention``, JSON, sealed when a signing key is set: it decides what is
deleted) holds an age per finished status (``{"SUCCESSFUL": "30d", "FAILED": "90d",
"CANCELED": "7d"}``; ages count from the end of the run, :func:`~durableflow.model.filters.
age_reference`) and ``keep_last``: how many finished runs of each schedule to keep (scheduled
runs are the ids ``<name>@<tick>``; one number for every schedule, or one per schedule name).
RUNNING, PENDING and RESUMABLE workflows are never pruned by the policy, nor by a filter with
``older_than``; a filter prune deletes nothing active, ever.

Protocol of :func:`prune` (one pass; workers may call it in the background at a ``rate``):

1. finish every interrupted delete (:meth:`~durableflow.storage.status_index.StatusIndex.
   list_deleting`: a tombstone left by a killed delete) under its lease;
2. select: the filter's matches, or the policy's (one selection per status age, plus the
   finished schedule runs beyond ``keep_last``); nothing is written on a dry run;
3. delete each one (:func:`delete_stopped`, at most ``rate`` per second): claim its lease
   without waiting, re-read the run record, skip it if it no longer qualifies (a restart made
   it RESUMABLE, a resume made it RUNNING), then the store's crash-safe delete protocol
   (tombstone, index entries, run record, contents, tombstone), then release the lease.

A kill anywhere leaves a tombstone that the next prune (step 1), delete, run or resume of the
id finishes; readers never see a half-deleted workflow with a wrong status (the tombstone is a
dirty marker: they read its run record, then nothing once that is gone).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from durableflow.errors import CheckpointCorruptError, WorkflowError, WorkflowStillActiveError
from durableflow.model.durations import format_seconds
from durableflow.model.filters import AgeArg, WorkflowFilter, age_reference, parse_age
from durableflow.model.records import RunRecord
from durableflow.model.schedule import parse_tick_workflow_id
from durableflow.model.status import ACTIVE, WorkflowStatus
from durableflow.runtime.bulk import select
from durableflow.runtime.lease import LeaseKeeper
from durableflow.runtime.status import scan_index, workflow_info
from durableflow.storage import layout
from durableflow.storage.store import WorkflowStore

__all__ = [
    "PRUNABLE",
    "PruneResult",
    "RetentionPolicy",
    "delete_stopped",
    "get_retention",
    "prune",
    "set_retention",
]

log = logging.getLogger("durableflow")

PRUNABLE = frozenset({WorkflowStatus.SUCCESSFUL, WorkflowStatus.FAILED, WorkflowStatus.CANCELED})
"""The statuses a policy may give an age to, and a prune by age may delete."""


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    """How long finished workflows are kept."""

    ages: Mapping[WorkflowStatus, float] = dataclasses.field(default_factory=dict)
    """Seconds a workflow of that status is kept after its run ended."""
    keep_last: int | None = None
    """Finished runs kept per schedule (None: no limit)."""
    keep_last_by_schedule: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """Per schedule name, overriding ``keep_last``."""

    @property
    def is_empty(self) -> bool:
        """True when it prunes nothing."""
        return not self.ages and self.keep_last is None and not self.keep_last_by_schedule

    def to_json(self) -> dict[str, Any]:
        """The stored form (and ``get_retention``'s display form: ages also as text)."""
        return {
            "ages": {s.value: seconds for s, seconds in sorted(self.ages.items())},
            "ages_text": {s.value: format_seconds(v) for s, v in sorted(self.ages.items())},
            "keep_last": self.keep_last,
            "keep_last_by_schedule": dict(self.keep_last_by_schedule),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetentionPolicy:
        """Read the stored form."""
        ages = {WorkflowStatus(k): float(v) for k, v in data.get("ages", {}).items()}
        by_schedule = {str(k): int(v) for k, v in data.get("keep_last_by_schedule", {}).items()}
        keep = data.get("keep_last")
        return cls(ages, None if keep is None else int(keep), by_schedule)

    @classmethod
    def of(
        cls,
        ages: Mapping[str, AgeArg] | None = None,
        keep_last: int | Mapping[str, int] | None = None,
    ) -> RetentionPolicy:
        """Parse ``set_retention``'s arguments.

        Raises:
            ValueError: a status that is not SUCCESSFUL, FAILED or CANCELED, a bad age, or a
                negative ``keep_last``.
        """
        parsed: dict[WorkflowStatus, float] = {}
        for name, age in (ages or {}).items():
            status = WorkflowStatus(str(name).upper())
            if status not in PRUNABLE:
                raise ValueError(
                    f"retention by age is for SUCCESSFUL, FAILED and CANCELED workflows, not "
                    f"{status.value} (RUNNING, PENDING and RESUMABLE ones are never pruned by age)"
                )
            seconds = parse_age(age)
            if seconds is not None:
                parsed[status] = seconds
        counts = keep_last if isinstance(keep_last, Mapping) else {}
        single = keep_last if isinstance(keep_last, int) else None
        for value in [single, *counts.values()]:
            if value is not None and value < 0:
                raise ValueError(f"keep_last must be 0 or more, got {value}")
        return cls(parsed, single, dict(counts))


def set_retention(
    store: WorkflowStore,
    ages: Mapping[str, AgeArg] | None = None,
    keep_last: int | Mapping[str, int] | None = None,
) -> RetentionPolicy:
    """Store the retention policy (replacing the old one) for every worker and process."""
    policy = RetentionPolicy.of(ages, keep_last)
    key = layout.retention_key()
    data = json.dumps(policy.to_json(), sort_keys=True).encode()
    store.storage.put(key, store.serializer.seal(data, key=key))
    return policy


def get_retention(store: WorkflowStore) -> RetentionPolicy:
    """The stored retention policy (an empty one if none was set).

    Raises:
        CheckpointCorruptError: the stored policy is garbled or its seal is wrong.
    """
    key = layout.retention_key()
    raw = store.storage.get(key)
    if raw is None:
        return RetentionPolicy()
    data = store.serializer.open(raw, key=key, what="retention policy")
    try:
        return RetentionPolicy.from_json(json.loads(data))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointCorruptError(f"retention policy is garbled: {err}", key=key) from err


@dataclasses.dataclass
class PruneResult:
    """What a prune did (or, on a dry run, would do)."""

    selected: list[str]
    deleted: list[str] = dataclasses.field(default_factory=list)
    finished: list[str] = dataclasses.field(default_factory=list)
    """Interrupted deletes finished (step 1)."""
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)
    """Id -> why it was not deleted (it changed since the selection, or a delete failed)."""
    dry_run: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the CLI and the workers' log."""
        verb = "would delete" if self.dry_run else "deleted"
        done = len(self.selected) if self.dry_run else len(self.deleted)
        text = f"{verb} {done} of {len(self.selected)} selected"
        if self.finished:
            text += f", finished {len(self.finished)} interrupted delete(s)"
        if self.skipped:
            text += f", skipped {len(self.skipped)}"
        return text


def delete_stopped(
    store: WorkflowStore,
    leases: LeaseKeeper,
    workflow_id: str,
    qualifies: Callable[[RunRecord], bool] | None = None,
) -> bool:
    """Delete a workflow nobody runs; False if it is gone or no longer ``qualifies``.

    1. claim its lease without waiting (WorkflowStillActiveError if a live runner holds it);
    2. re-read the run record: none -> clear leftovers (an interrupted delete); an active status,
       or a record that no longer ``qualifies`` (a resume or restart changed it since it was
       selected) -> leave it;
    3. the store's delete protocol (:meth:`WorkflowStore.delete_workflow`);
    4. release the lease.
    """
    leases.claim(workflow_id, lambda: None, wait=False)  # 1
    try:
        record = store.read_run(workflow_id)  # 2
        if record is None:
            store.clear_leftovers(workflow_id)
            return False
        status = record.status  # our lease is live: the effective status is the record's
        if status in ACTIVE or (qualifies is not None and not qualifies(record)):
            return False
        store.delete_workflow(workflow_id)  # 3
        return True
    finally:
        leases.release(workflow_id)  # 4


def _policy_ids(
    store: WorkflowStore, policy: RetentionPolicy, now: float
) -> dict[str, float | None]:
    """Step 2 for a policy: aged workflows of each status, then schedule runs beyond keep_last.

    Returns:
        Each id with the age it must still have under the lease (None: kept-last overflow).
    """
    ids: dict[str, float | None] = {}
    for status, age in policy.ages.items():
        for workflow_id in select(store, WorkflowFilter(frozenset({status}), older_than=age), now):
            ids[workflow_id] = age
    if policy.keep_last is not None or policy.keep_last_by_schedule:
        runs: dict[str, list[str]] = collections.defaultdict(list)
        for workflow_id in scan_index(store, PRUNABLE):
            parsed = parse_tick_workflow_id(workflow_id)
            if parsed is not None:
                runs[parsed[0]].append(workflow_id)
        for name, schedule_runs in runs.items():
            keep = policy.keep_last_by_schedule.get(name, policy.keep_last)
            if keep is not None:
                ordered = sorted(schedule_runs, key=lambda w: parse_tick_workflow_id(w) or ("", 0))
                for workflow_id in ordered[: max(0, len(ordered) - keep)]:
                    ids[workflow_id] = None
    return dict(sorted(ids.items()))


def prune(
    store: WorkflowStore,
    leases: LeaseKeeper,
    now: float | None = None,
    *,
    policy: RetentionPolicy | None = None,
    filter: WorkflowFilter | None = None,
    dry_run: bool = False,
    rate: float | None = None,
    workers: int = 4,
    sleep: Callable[[float], None] = time.sleep,
    on_done: Callable[[str], object] | None = None,
) -> PruneResult:
    """Apply the retention policy (or ``filter``) once; see the module docstring's protocol.

    Args:
        store: the workflow store.
        leases: the caller's lease keeper.
        now: the time ages are measured at (injected; default: the clock).
        policy: the policy to apply (default: the stored one); ignored with ``filter``.
        filter: delete what it matches instead (never RUNNING or PENDING; never RESUMABLE
            when it has ``older_than``; its status defaults to SUCCESSFUL, FAILED, CANCELED).
        dry_run: select only; write nothing.
        rate: at most this many deletes per second (None: as fast as the storage goes).
        workers: deletes in flight at once (threads; each workflow is one delete protocol).
        sleep: how to wait for ``rate`` (tests inject it).
        on_done: called with each workflow id whose delete ended (progress).
    """
    started = time.monotonic()
    now = time.time() if now is None else now
    interrupted = store.list_deleting()
    if filter is not None:
        allowed = filter.status if filter.status is not None else PRUNABLE
        allowed = allowed - ACTIVE
        if filter.older_than is not None:
            allowed = allowed - {WorkflowStatus.RESUMABLE}
        flt = dataclasses.replace(filter, status=allowed)
        ages = dict.fromkeys(select(store, flt, now), filter.older_than)
    else:
        allowed = PRUNABLE
        ages = _policy_ids(store, policy if policy is not None else get_retention(store), now)
    ids = [w for w in ages if w not in set(interrupted)]

    def qualifies(record: RunRecord) -> bool:
        """Whether the record read under the lease still qualifies (status, then age)."""
        age = ages.get(record.workflow_id)
        if record.status not in allowed:
            return False
        info = workflow_info(store, record, status=record.status)
        return age is None or now - age_reference(info) >= age

    result = PruneResult(ids, dry_run=dry_run)
    if dry_run:
        result.finished = interrupted
        return result
    for workflow_id in interrupted:  # 1
        try:
            delete_stopped(store, leases, workflow_id)
            result.finished.append(workflow_id)
        except WorkflowError as err:
            result.skipped[workflow_id] = f"{type(err).__name__}: {err}"
    pace = 1.0 / rate if rate else 0.0
    next_at = time.monotonic()

    def delete_one(workflow_id: str) -> str | None:
        try:
            if delete_stopped(store, leases, workflow_id, qualifies):
                return None
            return "changed since it was selected"
        except WorkflowError as err:
            if not isinstance(err, WorkflowStillActiveError):
                log.warning("prune: %s was not deleted: %s", workflow_id, err)
            return f"{type(err).__name__}: {err}"

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="durableflow-prune") as pool:
        futures = []
        for workflow_id in ids:  # 3
            if pace:
                delay = next_at - time.monotonic()
                if delay > 0:
                    sleep(delay)
                next_at = max(next_at, time.monotonic()) + pace
            futures.append((workflow_id, pool.submit(delete_one, workflow_id)))
        for workflow_id, future in futures:
            why = future.result()
            if why is None:
                result.deleted.append(workflow_id)
            else:
                result.skipped[workflow_id] = why
            if on_done is not None:
                on_done(workflow_id)
    result.seconds = time.monotonic() - started
    return result
