"""Recurring workflows in storage: adding, pausing, describing, and firing due ticks.

Workers call :meth:`Scheduler.fire_due` on every poll. Firing one schedule is five steps; the
state key is the single place a decision is made, and every step is safe to crash after:

1. read the schedule and its state (cursor = newest tick decided; ``pending`` = workflow ids
   decided but maybe not yet stored). Ids left pending by a worker that died are submitted
   now (step 4), then cleared (step 5).
2. plan: the ticks in ``(cursor, now]``, by the missed-tick policy (skip / latest / all); then
   the overlap policy: with ``overlap=skip`` nothing fires while the previous run is still
   going (RUNNING, PENDING or RESUMABLE), and at most one tick fires per decision.
3. compare-and-swap the state to ``cursor = newest due tick, pending = ids to fire``. A lost
   swap means another worker decided these ticks: stop here.
4. submit every pending id ``<name>@<tick>`` detached (PENDING, for any worker to run). A
   submission of an id that already exists leaves it as it is, so a tick is run at most once
   whatever the number of workers, crashes or retries.
5. compare-and-swap ``pending`` down to the ids not yet confirmed stored (a storage error
   keeps an id pending for the next poll; a factory that raises drops it, with ``last_error``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from durableflow.errors import StorageError, WorkflowNotFoundError, WorkflowStillActiveError
from durableflow.model.dag import FlatDAG, TaskNode, as_node, flatten
from durableflow.model.schedule import (
    Overlap,
    ScheduleOptions,
    ScheduleRecord,
    ScheduleState,
    format_tick,
    parse_duration,
    parse_tick_workflow_id,
    plan_ticks,
    tick_workflow_id,
    validate_schedule_name,
)
from durableflow.model.status import WorkflowStatus
from durableflow.storage.schedules import ScheduleStore

__all__ = ["Firing", "Scheduler"]

log = logging.getLogger("durableflow")

Submit = Callable[[str, FlatDAG, dict[str, Any]], bool]
StatusOf = Callable[[str], WorkflowStatus | None]
_GOING = frozenset({WorkflowStatus.RUNNING, WorkflowStatus.PENDING, WorkflowStatus.RESUMABLE})


@dataclasses.dataclass(frozen=True)
class Firing:
    """What one decision on one schedule did."""

    name: str
    started: tuple[str, ...]
    """Workflow ids submitted (or confirmed stored) by this call."""
    missed: int = 0
    """Due ticks not run by the missed-tick policy."""
    overlapped: int = 0
    """Due ticks not run because the previous run was still going."""


class Scheduler:
    """Schedules of one storage.

    Args:
        schedules: the schedule store.
        submit: ``submit(workflow_id, dag, metadata) -> stored`` stores a workflow as PENDING
            unless the id exists (raises WorkflowStillActiveError while another process holds it).
        status_of: the effective status of a workflow, None if it does not exist.
    """

    def __init__(self, schedules: ScheduleStore, submit: Submit, status_of: StatusOf) -> None:
        self.schedules = schedules
        self._submit = submit
        self._status_of = status_of

    # --- managing ----------------------------------------------------------------------
    def add(
        self,
        name: str,
        dag: Any,
        *,
        cron: str | None = None,
        every: Any = None,
        options: ScheduleOptions | None = None,
        metadata: Mapping[str, Any] | None = None,
        replace: bool = False,
        now: float | None = None,
    ) -> ScheduleRecord:
        """Store a schedule; see ``Client.schedule`` for the arguments.

        ``options`` (timezone, policies): :class:`~durableflow.model.schedule.ScheduleOptions`,
        its defaults when None.

        Raises:
            ValueError: bad arguments, or the name exists and ``replace`` is off.
            SerializationError: the DAG or factory cannot be pickled.
        """
        validate_schedule_name(name)
        now = time.time() if now is None else now
        seconds: int | None = None
        if every is not None:
            value = parse_duration(every)
            if value != int(value):
                raise ValueError(
                    f"schedule {name!r}: every must be a whole number of seconds, got {every!r}"
                )
            seconds = int(value)
        node = as_node(dag)
        if node is not None:
            flatten(node)  # a DAG must be valid now, not at its first tick
        elif not callable(dag):
            raise TypeError(
                f"schedule {name!r} needs a DAG (from .bind()) or a callable returning one, "
                f"got {dag!r}"
            )
        old = self.schedules.read(name)
        record = ScheduleRecord(
            name,
            cron,
            seconds,
            created_at=old.created_at if (old and replace) else now,
            **_fields(options or ScheduleOptions()),
            metadata=dict(metadata or {}),
            updated_at=now,
        )
        if not self.schedules.add(record, self.schedules.encode_dag(name, dag), replace=replace):
            raise ValueError(f"schedule {name!r} exists; remove it first or pass replace=True")
        return record

    def get(self, name: str) -> ScheduleRecord:
        """The schedule called ``name``.

        Raises:
            WorkflowNotFoundError: no such schedule.
        """
        record = self.schedules.read(validate_schedule_name(name))
        if record is None:
            raise WorkflowNotFoundError(f"no schedule {name!r} in {self.schedules.storage.url}")
        return record

    def set_paused(self, name: str, paused: bool, now: float | None = None) -> ScheduleRecord:
        """Pause or resume a schedule; resuming moves its cursor to now (skipping missed ticks)."""
        record = self.get(name)
        now = time.time() if now is None else now
        if not paused and record.paused:
            self._move_cursor(name, now)
        record = record.replace(paused=paused, updated_at=now)
        self.schedules.write(record)
        return record

    def _move_cursor(self, name: str, now: float) -> None:
        for _ in range(100):
            state, raw = self.schedules.read_state(name)
            if raw is None:
                if self.schedules.create_state(name, ScheduleState(now, updated_at=now)):
                    return
                continue
            new = (state or ScheduleState(now)).replace(
                cursor=max(now, state.cursor if state else now), updated_at=now
            )
            if self.schedules.swap_state(name, raw, new):
                return
        raise StorageError(f"schedule {name!r}: could not update its state (too much contention)")

    def remove(self, name: str) -> None:
        """Remove a schedule (the workflows it started are kept)."""
        self.get(name)
        self.schedules.delete(name)

    def describe(self, name: str, now: float | None = None) -> dict[str, Any]:
        """A JSON-friendly view of a schedule and its state."""
        record = self.get(name)
        now = time.time() if now is None else now
        state, _ = self.schedules.read_state(name)
        cursor = max(state.cursor if state else record.created_at, now)
        return {
            "name": name,
            "schedule": record.describe(),
            "cron": record.cron,
            "every": record.every,
            **record.options().as_dict(),
            "paused": record.paused,
            "next_tick": None if record.paused else format_tick(record.next_tick(cursor)),
            "last_tick": format_tick(state.cursor)
            if state and state.fired + state.missed
            else None,
            "last_workflow_id": state.last_workflow_id if state else None,
            "fired": state.fired if state else 0,
            "missed": state.missed if state else 0,
            "pending": list(state.pending) if state else [],
            "last_error": state.last_error if state else None,
            "metadata": dict(record.metadata),
            "created_at": record.created_at,
        }

    def names(self) -> list[str]:
        """Names of every stored schedule."""
        return self.schedules.names()

    # --- firing ----------------------------------------------------------------------------
    def fire_due(self, now: float, names: Iterable[str] | None = None) -> list[Firing]:
        """Decide and submit the due ticks of every schedule (or of ``names``)."""
        out = []
        for name in self.schedules.names() if names is None else names:
            try:
                firing = self.fire(name, now)
            except StorageError as err:
                log.warning("schedule %s: storage error, retrying at the next poll: %s", name, err)
                continue
            if firing is not None and (firing.started or firing.missed or firing.overlapped):
                out.append(firing)
        return out

    def fire(self, name: str, now: float) -> Firing | None:
        """Decide and submit the due ticks of one schedule (steps 1-5 above)."""
        record = self.schedules.read(name)  # 1
        if record is None or record.paused:
            return None
        state, raw = self._state(record)
        started: list[str] = []
        if state.pending:
            state, raw, started = self._drain(record, state, raw)
        plan = plan_ticks(record, state.cursor, now)  # 2
        if plan.cursor == state.cursor:
            return Firing(name, tuple(started)) if started else None
        fire_ids = [tick_workflow_id(name, tick) for tick in plan.fire]
        overlapped = 0
        if record.overlap is Overlap.SKIP and fire_ids:
            previous = state.last_workflow_id
            if previous is not None and self._status_of(previous) in _GOING:
                overlapped, fire_ids = len(fire_ids), []
            else:
                overlapped, fire_ids = len(fire_ids) - 1, fire_ids[:1]
        decided = state.replace(
            cursor=plan.cursor,
            pending=tuple(fire_ids),
            updated_at=now,
            last_workflow_id=fire_ids[-1] if fire_ids else state.last_workflow_id,
            fired=state.fired + len(fire_ids),
            missed=state.missed + plan.missed + overlapped,
        )
        if not self.schedules.swap_state(name, raw, decided):  # 3
            return Firing(name, tuple(started)) if started else None
        if plan.missed or overlapped:
            log.info(
                "schedule %s: %d tick(s) missed, %d skipped as overlapping",
                name,
                plan.missed,
                overlapped,
            )
        _, _, more = self._drain(record, decided, decided.to_bytes())  # 4, 5
        return Firing(name, tuple(started + more), plan.missed, overlapped)

    def _state(self, record: ScheduleRecord) -> tuple[ScheduleState, bytes]:
        for _ in range(10):
            state, raw = self.schedules.read_state(record.name)
            if raw is None:
                self.schedules.create_state(
                    record.name, ScheduleState(record.created_at, updated_at=time.time())
                )
                continue
            if state is None:  # garbled: start again from now rather than refire history
                fresh = ScheduleState(time.time(), updated_at=time.time())
                self.schedules.swap_state(record.name, raw, fresh)
                continue
            return state, raw
        raise StorageError(f"schedule {record.name!r}: cannot read or create its state")

    def _drain(
        self, record: ScheduleRecord, state: ScheduleState, raw: bytes
    ) -> tuple[ScheduleState, bytes, list[str]]:
        """Submit the pending ids (step 4), then swap ``pending`` down to what is left (step 5)."""
        done: list[str] = []
        keep: list[str] = []
        error = state.last_error
        for workflow_id in state.pending:
            try:
                self._submit_tick(record, workflow_id)
                done.append(workflow_id)
            except (StorageError, WorkflowStillActiveError) as err:
                log.warning(
                    "schedule %s: %s not submitted yet, retrying: %s", record.name, workflow_id, err
                )
                keep.append(workflow_id)
            except Exception as err:  # the user's factory or DAG: drop this tick, say why
                error = f"{workflow_id}: {type(err).__name__}: {err}"
                log.error("schedule %s: cannot start %s: %s", record.name, workflow_id, error)
        new = state.replace(pending=tuple(keep), last_error=error)
        if new != state and self.schedules.swap_state(record.name, raw, new):
            return new, new.to_bytes(), done
        current, current_raw = self.schedules.read_state(record.name)
        return (current or state), (current_raw or raw), done

    def _submit_tick(self, record: ScheduleRecord, workflow_id: str) -> None:
        parsed = parse_tick_workflow_id(workflow_id)
        tick = parsed[1] if parsed else time.time()
        dag = build_dag(
            self.schedules.read_dag(record.name), dt.datetime.fromtimestamp(tick, record.tz)
        )
        metadata = {**record.metadata, "schedule": record.name, "scheduled_time": format_tick(tick)}
        if self._submit(workflow_id, dag, metadata):
            log.info("schedule %s: submitted %s", record.name, workflow_id)


def build_dag(stored: Any, when: dt.datetime) -> FlatDAG:
    """The DAG of one tick: a stored DAG as is, or what a factory returns for ``when``.

    A factory that takes a positional parameter is given the tick as an aware datetime.
    """
    node = as_node(stored)
    if node is None:
        try:
            params = [
                p
                for p in inspect.signature(stored).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
            ]
        except (TypeError, ValueError):
            params = []
        node = as_node(stored(when) if params else stored())
    if not isinstance(node, TaskNode):
        raise TypeError(f"a schedule's factory must return a DAG (from .bind()), got {node!r}")
    return flatten(node)


def _fields(options: ScheduleOptions) -> dict[str, Any]:
    """The options as ScheduleRecord keyword arguments (``grace`` in float seconds)."""
    fields = {name: getattr(options, name) for name in ScheduleOptions.names()}
    fields["grace"] = float(options.grace)
    return fields
