"""The invariants a torture round must keep, checked after it was driven to its end.

- **no finished task re-run**: no execution logged after a snapshot is of a task the snapshot
  saw checkpointed (see :mod:`torture.rounds`);
- **at most once without a crash**: in a stretch of the log with no crash or pause, each task
  ran at most once (a flaky task: once per planned failure, plus one);
- **right output** and **terminal status**;
- **one status everywhere**: ``list_all()`` lists the id once, with the status ``get_status``
  and ``get_metadata`` give, and ``list_all(S)`` lists it exactly for its status S (stale raw
  index entries that the readers see through are only noted in the round log);
- **clean delete**: after ``delete`` no key of the workflow is left (its folder, index entries,
  dirty marker, tombstone) and the id runs a new DAG without adopting old outputs.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from durableflow import Client, WorkflowNotFoundError, WorkflowStatus
from durableflow.storage import layout
from torture.rounds import Round
from torture.shapes import expected

FLAKY = ("r-b", "m-flaky")
GATE = "g-gate"
# Keys that are not any one workflow's: shared by every workflow of a storage.
SHARED = ("environments/", "workers/", "slots/", "schedules/")


def allowed_runs(spec: dict[str, Any], tid: str) -> int:
    """How often a task may run in one stretch without a crash.

    The gate runs again on every resume of its FAILED workflow (a racing ``run`` of the id
    resumes it too), so it is not counted.
    """
    if tid == GATE:
        return 1 << 30
    return int(spec["fail_first"]) + 1 if tid in FLAKY else 1


def check_reruns(r: Round) -> None:
    """No execution after a snapshot is of a task that snapshot saw checkpointed."""
    executions = [e for e in r.executions() if e.wid == r.wid]
    seen: set[tuple[str, str]] = set()
    for snap in r.snapshots:
        for e in executions:
            if e.index >= snap.lines and e.tid in snap.done and (snap.label, e.tid) not in seen:
                seen.add((snap.label, e.tid))
                r.violate(
                    f"finished task re-run: {e.tid} (attempt {e.attempt}, pid {e.pid}) ran after "
                    f"its checkpoint was seen at snapshot '{snap.label}'"
                )


def check_calm(r: Round) -> None:
    """In each stretch with no crash or pause, no task ran more often than planned."""
    executions = [e for e in r.executions() if e.wid == r.wid]
    for start, end in r.calm:
        counts = Counter(e.tid for e in executions if start <= e.index < end)
        for tid, count in sorted(counts.items()):
            if count > allowed_runs(r.spec, tid):
                pids = sorted(
                    {e.pid for e in executions if start <= e.index < end and e.tid == tid}
                )
                r.violate(
                    f"task {tid} ran {count} times with no crash in between (log lines "
                    f"{start}-{end}, pids {pids})"
                )


def index_entries(r: Round) -> dict[str, set[str]]:
    """The raw status index: workflow id -> statuses with an entry (``dirty`` included)."""
    root = layout.index_prefix("X")[: -len("X/")]
    entries: dict[str, set[str]] = {}
    for key in r.storage.list(root):
        status, _, wid = key[len(root) :].partition("/")
        entries.setdefault(wid, set()).add(status)
    return entries


def _status(client: Client, wid: str) -> WorkflowStatus | None:
    try:
        return client.get_status(wid)
    except WorkflowNotFoundError:
        return None


def check_views(r: Round, client: Client, *, when: str) -> WorkflowStatus | None:
    """``list_all``, ``list_all(S)``, ``get_status`` and ``get_metadata`` agree on the id.

    The views are read between two ``get_status`` calls; if those differ (a lease expired
    meanwhile: RUNNING became RESUMABLE) the reading is repeated, at most three times.
    """
    for _ in range(3):
        status = _status(client, r.wid)
        listed = client.list_all()
        filtered = {each: [w for w, _ in client.list_all(each)] for each in WorkflowStatus}
        try:
            meta = client.get_metadata(r.wid)["status"] if status is not None else None
        except WorkflowNotFoundError:
            meta = None
        if _status(client, r.wid) is status:
            break
        r.note(f"{when}: the status moved while reading the views; reading again")
    ids = [wid for wid, _ in listed]
    for wid in sorted(set(ids)):
        if ids.count(wid) != 1:
            r.violate(f"{when}: list_all() lists {wid} {ids.count(wid)} times: {listed}")
    mine = [st for wid, st in listed if wid == r.wid]
    if status is None and mine:
        r.violate(f"{when}: get_status says not found, list_all() says {mine}")
    if status is not None and mine != [status]:
        r.violate(f"{when}: get_status says {status.value}, list_all() says {mine}")
    if status is not None and meta != status.value:
        r.violate(f"{when}: get_status says {status.value}, get_metadata says {meta}")
    for each, wids in filtered.items():
        if (r.wid in wids) != (status is each):
            r.violate(
                f"{when}: list_all({each.value}) {'lists' if r.wid in wids else 'omits'} "
                f"{r.wid}, whose status is {status and status.value}"
            )
    if status is not None and status.is_terminal:
        raw = index_entries(r).get(r.wid, set()) - {"dirty"}
        if raw != {status.value}:  # the API views agree: a stale entry readers repair
            r.note(f"{when}: {status.value} workflow has raw index entries {sorted(raw)}")
    return status


def check_end(r: Round, client: Client, terminal: set[WorkflowStatus]) -> None:
    """Terminal status, right output, one status everywhere, no re-run."""
    status = check_views(r, client, when="end")
    if status not in terminal:
        r.violate(
            f"end: status {status and status.value}, expected one of "
            f"{sorted(s.value for s in terminal)}"
        )
    if status is WorkflowStatus.SUCCESSFUL:
        try:
            output = client.get_output(r.wid, timeout=10)
        except Exception as err:
            r.violate(f"end: get_output raised {type(err).__name__}: {err}")
        else:
            if output != expected(r.spec):
                r.violate(f"end: output {output!r}, expected {expected(r.spec)!r}")
    check_reruns(r)
    check_calm(r)


def leftovers(r: Round) -> list[str]:
    """Keys of the storage that belong to a workflow (after a delete: orphans)."""
    root = layout.workflows_prefix()[: -len("workflows/")]
    return [key for key in r.storage.list("") if not key[len(root) :].startswith(SHARED)]


def check_deleted(r: Round, client: Client) -> None:
    """Nothing of the workflow is left and every reader agrees it is gone."""
    orphans = leftovers(r)
    if orphans:
        r.violate(f"delete: orphan keys {orphans[:8]}{' ...' if len(orphans) > 8 else ''}")
    try:
        status = client.get_status(r.wid)
        r.violate(f"delete: get_status still says {status.value}")
    except WorkflowNotFoundError:
        pass
    if client.list_all():
        r.violate(f"delete: list_all() still lists {client.list_all()}")


def check_reuse(r: Round, answer: dict[str, Any] | None, since: int, spec: dict[str, Any]) -> None:
    """A new DAG under the deleted id returned its own output and ran every logged task anew."""
    if answer is None or answer.get("result") != expected(spec):
        r.violate(
            f"reuse: new DAG under the deleted id answered {answer}, expected {expected(spec)!r}"
        )
    ever = {e.tid for e in r.executions()}
    fresh = {e.tid for e in r.executions() if e.index >= since}
    adopted = sorted((r.checkpoints() & ever) - fresh)
    if adopted:
        r.violate(f"reuse: the new run adopted old checkpoints of {adopted}")
