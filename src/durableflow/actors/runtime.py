"""The call protocol of a virtual actor: one writer at a time, every call applied exactly once.

Each process keeps one :class:`ActorRuntime` per (Client, actor). Storage keys: :mod:`._layout`;
the callers' side (futures, the driver thread that waits for outcomes): :mod:`.calls`.

Submit (:meth:`ActorRuntime.submit`, in the caller's thread, so one thread's calls are numbered
in the order it made them):

1. store the call create-only at ``calls/<seq>``, ``seq`` one past the last number this process
   stored or saw (the head hint for a fresh process); a taken number means another submitter
   was first: try the next. Numbers have no gaps (a number is tried only once the one before
   it exists), so the call log is a sequence;
2. mark the actor's mailbox (``actor-mailbox/<aid>``), so that a worker finds the call even if
   this process dies now. ``send`` stops here; ``run`` / ``run_async`` go on with Drain and
   wait for the outcome ``done/<seq>``.

Drain (:meth:`ActorRuntime.drain`, by a caller's driver thread or a worker):

1. claim the actor's lease (:class:`~durableflow.runtime.ownership.OwnershipKeeper`, the
   primitive of workflow leases and worker slots, without waiting): refused means a live
   writer drains, and the caller polls ``done/<seq>`` (claiming again at each poll: the writer
   may die or finish without seeing the call). Then read the actor record: gone, the calls
   fail with ActorNotFoundError; created again since this process last saw it (another
   process deleted and re-created the id), this process's caches of the old actor are dropped
   and its calls numbered for the old log that nobody committed are removed and failed;
2. find the last committed call ``n`` (the head hint, then ``done/<n+1>`` probed until absent)
   and the state after it (in ``done/<n>``; the state ``__init__`` made for ``n = 0``);
3. read call ``n+1``; none: go to 6;
4. check the lease (no I/O before its deadline), restore the state into an instance, run the
   method (:mod:`.body`: here, or as a Ray task with the class's Ray options when the Client
   runs tasks on Ray; either way it writes nothing). A method that returns a DAG runs it, here,
   as the workflow ``actor.<aid>.call.<n+1>`` (checkpointed; a rerun resumes it). A method
   that raises leaves the state as it was;
5. check the lease, then **commit**: create ``done/<n+1>`` holding the result (or the
   exception) *and* the new state, in one value, create-only. If it exists, an earlier writer
   committed it: its value wins and its state is adopted. Then move the head hint, compact
   (every :data:`COMPACT_EVERY` calls, the states of calls older than the last
   :data:`COMPACT_EVERY` are dropped; their results stay), and go to 3 with ``n+1``;
6. clear the mailbox marker, then look for call ``n+1`` once more (a submitter may have stored
   it and marked the mailbox just before the clear): found, mark the mailbox again and go to 3;
7. release the lease.

Why a call applies once: the commit is one create-only value keyed by the call number, and
state ``n+1`` is read only from ``done/<n+1>``; two writers (a paused one and its successor)
can both run a method, but only one outcome and one state per number ever exist. The lease
makes that race rare (only one writer runs at a time, fenced by ``check`` before each step),
it is not what makes it safe. What runs more than once is a method's *body* when a writer is
killed between steps 4 and 5 (as a task's body may): its effect on the actor's state and its
result commit once.

A killed caller (any step) leaves its call stored; the next caller of that actor, or a worker
(mailbox marked at Submit 2), applies it. A killed writer (Drain 1-7) leaves its lease to a
dead process, which the next claimer on the machine takes over at once (elsewhere after the
lease's TTL, by the ownership rules).

Readonly calls (:meth:`ActorRuntime.read`) take no lease and write nothing: they find the last
committed state (Drain 2) and run the method on a copy, concurrently with a writer. (A process
that read an actor before another process deleted and re-created it may read the old state
until its next mutating call checks the record, Drain 1.)

Durability: the call (Submit 1) and the commit (Drain 5) are durable writes; the mailbox
marker, the head hint and the lease are written without a power-cut guarantee (a lost marker
delays a sent call until the actor's next caller; a lost hint costs readers a few probes).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from durableflow.actors import _layout
from durableflow.actors.body import Body, method_runner
from durableflow.actors.calls import ActorCalls
from durableflow.actors.errors import ActorNotFoundError
from durableflow.actors.records import dump_error, dump_result
from durableflow.actors.store import ActorStore, Outcome
from durableflow.errors import WorkflowStillActiveError
from durableflow.model.ownership import LeaseRecord
from durableflow.runtime.ownership import OwnershipKeeper

if TYPE_CHECKING:
    from durableflow.client import Client

__all__ = ["COMPACT_EVERY", "ActorRuntime", "subworkflow_id"]

log = logging.getLogger("durableflow.actors")

COMPACT_EVERY = 100
"""Committed states kept: every this many calls, the states of older calls are dropped."""


def subworkflow_id(actor_id: str, seq: int) -> str:
    """The id of the workflow a method's returned DAG runs as (deterministic: reruns resume)."""
    return f"actor.{actor_id}.call.{seq}"


_CALLER = f"{socket.gethostname()}:{os.getpid()}"


class ActorRuntime(ActorCalls):
    """Submits, applies and reads the calls of one actor in this process (module docstring).

    Args:
        client: the Client whose storage holds the actor (sub-workflows run on it).
        actor_id: the actor.
        actor_class: the :class:`~durableflow.actors.api.ActorClass` whose code runs calls.
        keeper: the process's keeper of actor leases on that storage.
    """

    def __init__(
        self,
        client: Client,
        actor_id: str,
        actor_class: Any,
        keeper: OwnershipKeeper[LeaseRecord],
    ) -> None:
        super().__init__(ActorStore(client.storage, client.store.serializer), actor_id, actor_class)
        self.client = client
        self.methods = method_runner(client)
        """Where the bodies of this actor's methods run (here, or as Ray tasks)."""
        self._keeper = keeper
        self._submit_lock = threading.Lock()
        self._next_seq: int | None = None
        self._created: Any = None
        self._lost = threading.Event()
        self._ready: list[Outcome] = []
        self.applied = 0
        """Calls this runtime committed (for tests and the worker's log)."""

    # --- submit -------------------------------------------------------------------------------
    def submit(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], mode: str) -> int:
        """Store a call (Submit 1-2) and return its number."""
        header = {"method": method, "submitted": time.time(), "by": _CALLER, "mode": mode}
        with self._submit_lock:
            seq = (
                self._next_seq
                if self._next_seq is not None
                else self.store.read_head(self.actor_id) + 1
            )
            while not self.store.create_call(self.actor_id, seq, header, args, kwargs):  # 1
                seq += 1
            self._next_seq = seq + 1
        self.store.mark_mailbox(self.actor_id)  # 2
        return seq

    # --- drain --------------------------------------------------------------------------------
    def drain(self, should_stop: Callable[[], bool] | None = None) -> int:
        """Apply every pending call if this process can be the writer (Drain 1-7).

        ``should_stop``: asked before each call (a worker shutting down); True ends the drain
        after the call in progress, leaving the rest pending (the mailbox stays marked).

        Returns:
            The number of calls this call committed (0: another writer holds the lease, or
            nothing was pending).
        """
        if not self._drain_lock.acquire(blocking=False):
            return 0  # this process drains already (its driver, or a worker thread)
        try:
            self._lost.clear()
            if self._keeper.take(self.actor_id, self._lost.set, wait=False) is not None:  # 1
                return 0
            try:
                self._check_incarnation()
                return self._apply_pending(should_stop)
            except WorkflowStillActiveError as err:  # lost the lease: the new writer goes on
                log.warning("actor %s: %s", self.actor_id, err)
                return 0
            finally:
                self._keeper.release(self.actor_id)  # 7
        finally:
            self._drain_lock.release()
            self._flush()
            self._notify_change()

    def _flush(self) -> None:
        """Resolve the futures of the outcomes committed and not yet resolved.

        A drain resolves each call's future when it commits the next one, and the last one's
        here, after its storage work: a caller that closes its Client as soon as it has its
        result does not close the storage under a writer still releasing the lease.
        """
        with self._lock:
            ready, self._ready = self._ready, []
        for outcome in ready:
            self._resolve(outcome)

    def _check_incarnation(self) -> None:
        """Drain 1, continued: the actor this process knows is the one stored.

        An actor deleted and created again by another process starts a new call log: forget
        what this process cached of the old one, and fail the calls it submitted to the old
        one that no writer committed (their numbers may leave a gap in the new log: they are
        removed, not applied).

        Raises:
            ActorNotFoundError: the actor is not stored (deleted).
        """
        record = self.store.read_record(self.actor_id)
        if record is None:
            raise self._not_found()
        created = record.header.get("created")
        if self._created is None or self._created == created:
            self._created = created
            return
        log.warning("actor %s was deleted and created again elsewhere", self.actor_id)
        with self._lock:
            self._created = created
            self._next_seq = None
            self._committed_cache = None
            self._state0 = None
            pending = dict(self._pending)
        for seq, future in sorted(pending.items()):
            if self.store.read_outcome(self.actor_id, seq) is not None:
                continue  # the new actor's writer applied it: resolved as usual
            self.store.storage.delete(_layout.call_key(self.actor_id, seq))
            with self._lock:
                self._pending.pop(seq, None)
            future.set_exception(
                ActorNotFoundError(
                    f"virtual actor {self.actor_id!r} was deleted and created again while "
                    f"call {seq} waited: it was not applied",
                    workflow_id=self.actor_id,
                )
            )

    def _apply_pending(self, should_stop: Callable[[], bool] | None) -> int:
        seq, state = self.committed()  # 2
        applied = 0
        while True:
            if should_stop is not None and should_stop():
                return applied
            call = self.store.read_call(self.actor_id, seq + 1)  # 3
            if call is None:
                self.store.clear_mailbox(self.actor_id)  # 6
                if not self.store.call_exists(self.actor_id, seq + 1):
                    return applied
                self.store.mark_mailbox(self.actor_id)
                continue
            self._keeper.check(self.actor_id)  # 4
            header, value, new_state = self._run(seq + 1, call, state)
            self._keeper.check(self.actor_id)  # 5
            if self.store.create_outcome(self.actor_id, seq + 1, header, value, new_state):
                outcome = Outcome(seq + 1, header, value, new_state)
            else:  # committed by an earlier writer: its value and state win
                stored = self.store.read_outcome(self.actor_id, seq + 1)
                if stored is None or stored.state is None:
                    raise WorkflowStillActiveError(
                        f"actor {self.actor_id!r}: call {seq + 1} committed elsewhere and "
                        "compacted; starting over",
                        workflow_id=self.actor_id,
                    )
                outcome = stored
            seq += 1
            assert outcome.state is not None
            state = outcome.state
            with self._lock:
                self._committed_cache = (seq, state)
            self.store.write_head(self.actor_id, seq)
            if seq % COMPACT_EVERY == 0 and seq >= 2 * COMPACT_EVERY:
                self._compact(seq)
            applied += 1
            self.applied += 1
            with self._lock:  # the previous call's caller hears now; this one's after more work
                earlier, self._ready = self._ready, [outcome]
            for done in earlier:
                self._resolve(done)

    def _compact(self, seq: int) -> None:
        """Drop the states of calls ``seq - 2C + 1 .. seq - C`` (C = COMPACT_EVERY)."""
        with self.store.storage.batch():
            for old in range(seq - 2 * COMPACT_EVERY + 1, seq - COMPACT_EVERY + 1):
                self.store.strip_outcome(self.actor_id, old)

    def _run(
        self,
        seq: int,
        call: tuple[dict[str, Any], tuple[tuple[Any, ...], dict[str, Any]]],
        state: bytes,
    ) -> tuple[dict[str, Any], bytes, bytes]:
        """Run call ``seq`` on ``state``: its outcome header, pickled value and new state.

        The body runs where :attr:`methods` says (here, or a Ray task); a DAG it returned runs
        here, on the Client, as the call's sub-workflow.
        """
        call_header, (args, kwargs) = call
        method = str(call_header.get("method"))
        header: dict[str, Any] = {
            "method": method,
            "submitted": call_header.get("submitted"),
            "mode": call_header.get("mode", "run"),
            "started": time.time(),
            "state": True,
        }
        name = f"actor.{self.actor_id}.{method}.{seq}"
        body = self.methods.run(self.actor_class, method, state, args, kwargs, name)
        value, new_state = body.value, body.state
        if body.ok and body.node is not None:
            header["workflow_id"] = subworkflow_id(self.actor_id, seq)
            try:
                value = dump_result(self.client.run(body.node, workflow_id=header["workflow_id"]))
            except WorkflowStillActiveError:
                raise  # the sub-workflow runs elsewhere now: not this call's outcome
            except Exception as err:
                body = Body(False, dump_error(err), state, f"{type(err).__name__}: {err}")
                value, new_state = body.value, body.state
        header["ok"] = body.ok
        if not body.ok:
            header["error"] = body.error
        header["finished"] = time.time()
        return header, value, new_state
