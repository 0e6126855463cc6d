"""Every storage key durableflow uses, as pure functions. Nothing else builds a key.

Layout version 1::

    v1/workflows/<wid>/run                 run record (JSON): status, times, metadata, error
    v1/workflows/<wid>/lease               owner of the running workflow and its expiry (JSON)
    v1/workflows/<wid>/cancel              a cancel request, polled by the runner
    v1/workflows/<wid>/specs/<batch>       task specs of one DAG: "root" for the submitted DAG,
                                           a task id for the continuation that task returned
    v1/workflows/<wid>/outputs/<tid>       a task's checkpoint (create-only)
    v1/workflows/<wid>/errors/<tid>        the last failed attempt of a task (JSON)
    v1/workflows/<wid>/attempts/<tid>      the task's latest attempt: number, start, end, outcome,
                                           host and pid (JSON, written by the worker running it)
    v1/workflows/<wid>/events/<tid>        a received external event (create-only)
    v1/index/<STATUS>/<wid>                status index entry (empty)
    v1/index/dirty/<wid>                   a status change in flight (JSON: old and new status),
                                           or a delete in progress (the tombstone: no new status)
    v1/created/<created_at>~<wid>          creation index entry (empty): the run record's
                                           created_at (repr, exact) before the id
    v1/schedules/<name>/spec               a recurring workflow's schedule (JSON)
    v1/schedules/<name>/dag                its DAG or DAG factory (pickled envelope)
    v1/schedules/<name>/state              its firing cursor (JSON, compare-and-swap)
    v1/slots/<n>                           running slot n of the workers (JSON lease, create-only)
    v1/environments/<digest>               installed packages of a runtime environment (JSON,
                                           content-addressed, shared by the runs that record it)
    v1/workers/<owner>                     a live worker's heartbeat (JSON: host, pid, expiry)

DESIGN.md drew one folder per task (``tasks/<tid>/output``); flat ``outputs/`` and ``specs/``
folders cost one directory fsync per checkpoint instead of two and let a resume learn every
finished task from one listing.
"""

from __future__ import annotations

__all__ = [
    "LAYOUT_VERSION",
    "attempt_key",
    "attempts_prefix",
    "cancel_key",
    "created_key",
    "created_prefix",
    "dirty_key",
    "dirty_prefix",
    "environment_key",
    "error_key",
    "errors_prefix",
    "event_key",
    "index_key",
    "index_prefix",
    "lease_key",
    "output_key",
    "outputs_prefix",
    "parse_created",
    "run_key",
    "schedule_dag_key",
    "schedule_key",
    "schedule_prefix",
    "schedule_state_key",
    "schedules_prefix",
    "slot_key",
    "slots_prefix",
    "spec_key",
    "specs_prefix",
    "worker_key",
    "workers_prefix",
    "workflow_prefix",
    "workflows_prefix",
]

LAYOUT_VERSION = 1
_ROOT = f"v{LAYOUT_VERSION}"
ROOT_BATCH = "root"


def workflows_prefix() -> str:
    """Prefix of every workflow's folder."""
    return f"{_ROOT}/workflows/"


def workflow_prefix(workflow_id: str) -> str:
    """Prefix of everything stored for one workflow."""
    return f"{_ROOT}/workflows/{workflow_id}/"


def run_key(workflow_id: str) -> str:
    """The run record."""
    return f"{_ROOT}/workflows/{workflow_id}/run"


def lease_key(workflow_id: str) -> str:
    """The lease of the workflow's current runner."""
    return f"{_ROOT}/workflows/{workflow_id}/lease"


def cancel_key(workflow_id: str) -> str:
    """A cancel request."""
    return f"{_ROOT}/workflows/{workflow_id}/cancel"


def specs_prefix(workflow_id: str) -> str:
    """Prefix of the workflow's spec batches."""
    return f"{_ROOT}/workflows/{workflow_id}/specs/"


def spec_key(workflow_id: str, batch: str) -> str:
    """One batch of task specs: ``root`` or the id of the task that continued into it."""
    return f"{_ROOT}/workflows/{workflow_id}/specs/{batch}"


def outputs_prefix(workflow_id: str) -> str:
    """Prefix of the workflow's checkpoints."""
    return f"{_ROOT}/workflows/{workflow_id}/outputs/"


def output_key(workflow_id: str, task_id: str) -> str:
    """A task's checkpoint."""
    return f"{_ROOT}/workflows/{workflow_id}/outputs/{task_id}"


def errors_prefix(workflow_id: str) -> str:
    """Prefix of the workflow's task error records."""
    return f"{_ROOT}/workflows/{workflow_id}/errors/"


def error_key(workflow_id: str, task_id: str) -> str:
    """The record of a task's last failed attempt."""
    return f"{_ROOT}/workflows/{workflow_id}/errors/{task_id}"


def attempts_prefix(workflow_id: str) -> str:
    """Prefix of the workflow's attempt records."""
    return f"{_ROOT}/workflows/{workflow_id}/attempts/"


def attempt_key(workflow_id: str, task_id: str) -> str:
    """The record of a task's latest attempt."""
    return f"{_ROOT}/workflows/{workflow_id}/attempts/{task_id}"


def event_key(workflow_id: str, task_id: str) -> str:
    """An external event received for a waiting task."""
    return f"{_ROOT}/workflows/{workflow_id}/events/{task_id}"


def index_prefix(status: str) -> str:
    """Prefix of the status index entries of one status."""
    return f"{_ROOT}/index/{status}/"


def index_key(status: str, workflow_id: str) -> str:
    """One status index entry."""
    return f"{_ROOT}/index/{status}/{workflow_id}"


def dirty_prefix() -> str:
    """Prefix of the in-flight status change markers."""
    return f"{_ROOT}/index/dirty/"


def created_prefix() -> str:
    """Prefix of the creation index: one empty entry ``<created_at>~<wid>`` per workflow."""
    return f"{_ROOT}/created/"


def created_key(created_at: float, workflow_id: str) -> str | None:
    """A workflow's creation index entry, or None when its name would pass 255 bytes.

    The name is ``repr`` of the run record's ``created_at`` (exact when parsed back), ``~``,
    and the id: one listing of :func:`created_prefix` orders every workflow by creation time.
    A name longer than a file name may be (an id near 255 bytes) gets no entry; readers then
    read the run record, as for workflows stored before the index existed.
    """
    name = f"{float(created_at)!r}~{workflow_id}"
    if len(name.encode()) > 255:
        return None
    return f"{_ROOT}/created/{name}"


def parse_created(name: str) -> tuple[float, str] | None:
    """``(created_at, workflow_id)`` of a creation index entry's name; None if it is not one."""
    stamp, sep, workflow_id = name.partition("~")
    if not sep or not workflow_id:
        return None
    try:
        return float(stamp), workflow_id
    except ValueError:
        return None


def dirty_key(workflow_id: str) -> str:
    """The marker of a status change in flight."""
    return f"{_ROOT}/index/dirty/{workflow_id}"


def schedules_prefix() -> str:
    """Prefix of every schedule's folder."""
    return f"{_ROOT}/schedules/"


def schedule_prefix(name: str) -> str:
    """Prefix of everything stored for one schedule."""
    return f"{_ROOT}/schedules/{name}/"


def schedule_key(name: str) -> str:
    """A schedule's record: when and how it fires."""
    return f"{_ROOT}/schedules/{name}/spec"


def schedule_dag_key(name: str) -> str:
    """A schedule's DAG, or the factory that builds one per tick."""
    return f"{_ROOT}/schedules/{name}/dag"


def schedule_state_key(name: str) -> str:
    """A schedule's firing cursor."""
    return f"{_ROOT}/schedules/{name}/state"


def environment_key(digest: str) -> str:
    """The package list of a recorded runtime environment, by its digest."""
    return f"{_ROOT}/environments/{digest}"


def slots_prefix() -> str:
    """Prefix of the workers' running slots."""
    return f"{_ROOT}/slots/"


def slot_key(slot: int) -> str:
    """One running slot of the workers (``max_running_workflows`` across workers)."""
    return f"{_ROOT}/slots/{slot}"


def workers_prefix() -> str:
    """Prefix of the workers' heartbeats."""
    return f"{_ROOT}/workers/"


def worker_key(owner: str) -> str:
    """One worker's heartbeat."""
    return f"{_ROOT}/workers/{owner}"


# --- restart, fork and retention (issue 14) -------------------------------------------------
#   v1/workflows/<wid>/restart             an in-place restart in progress: its plan (JSON)
#   v1/workflows/<wid>/history/<n>/<key>   what restart n set aside (<key>: outputs/<tid>,
#                                          specs/<batch>, attempts/<tid>, errors/<tid>)
#   v1/retention                           the retention policy (JSON)


def restart_key(workflow_id: str) -> str:
    """The plan of an in-place restart in progress (:mod:`durableflow.runtime.restart`)."""
    return f"{_ROOT}/workflows/{workflow_id}/restart"


def history_prefix(workflow_id: str) -> str:
    """Prefix of what the workflow's restarts set aside."""
    return f"{_ROOT}/workflows/{workflow_id}/history/"


def history_key(workflow_id: str, restart: int, relative: str) -> str:
    """Where restart ``restart`` keeps the key ``workflow_prefix(wid) + relative``."""
    return f"{_ROOT}/workflows/{workflow_id}/history/{restart}/{relative}"


def retention_key() -> str:
    """The retention policy (:mod:`durableflow.runtime.retention`)."""
    return f"{_ROOT}/retention"
