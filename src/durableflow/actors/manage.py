"""Managing stored actors: find, list, delete, upgrade, inspect them; the workers' drain.

:func:`get_actor`, :func:`list_actors`, :func:`delete_actor` and :func:`upgrade_actor` are the
management API of the issue (re-exported by ``durableflow.workflow``); :func:`actor_info` and
:func:`actor_calls` are what ``durableflow actor show|calls`` print.

Reading only: :func:`actor_info` and :func:`actor_calls` take no lease and write nothing.
:func:`drain_actor` is Drain of :mod:`.runtime` for an actor whose class this process loads
from its record (a worker has no handle), after the environment check of the Client's policy.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from durableflow.actors.api import (
    ActorClass,
    ActorHandle,
    default_client,
    importable,
    pickle_class,
    store_of,
    validate_actor_id,
)
from durableflow.actors.environment import (
    check_actor_environment,
    class_path,
    record_environment,
)
from durableflow.actors.errors import ActorDefinitionError, ActorNotFoundError
from durableflow.actors.records import ActorInfo, CallInfo, load_state, preview
from durableflow.actors.registry import forget_runtime, keeper_for, runtime_for
from durableflow.actors.runtime import ActorRuntime
from durableflow.actors.store import ActorLeases
from durableflow.errors import WorkflowStillActiveError

if TYPE_CHECKING:
    from durableflow.client import Client

__all__ = [
    "actor_calls",
    "actor_info",
    "delete_actor",
    "drain_actor",
    "drain_mailboxes",
    "get_actor",
    "list_actors",
    "marked_actors",
    "upgrade_actor",
]


def _client(client: Client | None) -> Client:
    return client if client is not None else default_client()


def actor_info(actor_id: str, *, client: Client | None = None) -> ActorInfo:
    """The record, last committed call, pending calls, state preview and writer of an actor.

    Raises:
        ActorNotFoundError: no such actor.
    """
    aid = validate_actor_id(actor_id)
    client = _client(client)
    store = store_of(client)
    record = store.read_record(aid)
    if record is None:
        raise ActorNotFoundError(f"no virtual actor {aid!r} is stored", workflow_id=aid)
    reader = ActorRuntime(client, aid, None, keeper_for(client))
    committed, state = reader.committed()
    try:
        shown: str | None = preview(load_state(state))
    except Exception as err:  # a state of classes this process cannot import
        shown = f"<not loadable here: {type(err).__name__}: {err}>"
    lease, _ = ActorLeases(client.storage).read(aid)
    header = record.header
    return ActorInfo(
        actor_id=aid,
        class_name=str(header.get("class_name", "?")),
        class_path=str(header.get("class_path", "?")),
        created=float(header.get("created", 0.0)),
        version=int(header.get("version", 1)),
        upgraded=header.get("upgraded"),
        environment=dict(header.get("environment") or {}),
        committed=committed,
        pending=tuple(seq for seq in store.call_numbers(aid) if seq > committed),
        state=shown,
        owner=lease.owner if lease is not None else None,
    )


def actor_calls(
    actor_id: str, *, client: Client | None = None, limit: int | None = None
) -> list[CallInfo]:
    """The actor's calls, oldest first (the last ``limit`` ones): results, errors, times.

    Raises:
        ActorNotFoundError: no such actor.
    """
    aid = validate_actor_id(actor_id)
    client = _client(client)
    store = store_of(client)
    if store.read_record(aid) is None:
        raise ActorNotFoundError(f"no virtual actor {aid!r} is stored", workflow_id=aid)
    numbers = store.call_numbers(aid)
    if limit is not None:
        numbers = numbers[-limit:] if limit > 0 else []
    out: list[CallInfo] = []
    for seq in numbers:
        call = store.call_header(aid, seq) or {}
        outcome = store.read_outcome(aid, seq)
        if outcome is None:
            out.append(
                CallInfo(
                    seq,
                    str(call.get("method", "?")),
                    call.get("submitted"),
                    pending=True,
                    mode=str(call.get("mode", "run")),
                )
            )
            continue
        head = outcome.header
        ok = bool(head.get("ok"))
        out.append(
            CallInfo(
                seq,
                str(head.get("method", call.get("method", "?"))),
                head.get("submitted", call.get("submitted")),
                pending=False,
                ok=ok,
                started=head.get("started"),
                finished=head.get("finished"),
                result=_shown(outcome.value) if ok else None,
                error=None if ok else head.get("error"),
                workflow_id=head.get("workflow_id"),
                mode=str(head.get("mode", call.get("mode", "run"))),
            )
        )
    return out


def _shown(value: bytes) -> str:
    try:
        return preview(pickle.loads(value))
    except Exception as err:
        return f"<not loadable here: {type(err).__name__}>"


def marked_actors(client: Client) -> list[str]:
    """Actors whose mailbox is marked: they may have pending calls."""
    return store_of(client).marked()


def drain_actor(
    client: Client, actor_id: str, *, should_stop: Callable[[], bool] | None = None
) -> int:
    """Apply the pending calls of ``actor_id`` here, if no other writer holds it.

    Returns:
        The number of calls committed (0: another writer drains it, or none was pending).

    Raises:
        EnvironmentMismatchError: the stored class or environment differs (policy ``error``).
        SerializationError: its class does not load here.
    """
    store = store_of(client)
    record = store.read_record(actor_id)
    if record is None:
        store.clear_mailbox(actor_id)  # deleted: nothing to drain
        return 0
    stored = store.load_class(actor_id, record)
    check_actor_environment(
        client.store,
        actor_id,
        record.header.get("environment") or {},
        stored.cls if importable(stored.cls) else None,
        client.env_policy,
    )
    return runtime_for(client, actor_id, stored.using(client)).drain(should_stop)


def drain_mailboxes(client: Client | None = None) -> dict[str, Any]:
    """Drain every marked actor once, here (what a worker does each poll); ``{id: result}``.

    A result is the number of calls committed, or the exception that stopped that actor.
    """
    client = _client(client)
    results: dict[str, Any] = {}
    for actor_id in marked_actors(client):
        try:
            results[actor_id] = drain_actor(client, actor_id)
        except Exception as err:  # one actor's problem must not stop the others
            results[actor_id] = err
    return results


def get_actor(
    actor_id: str | None = None, *, workflow_id: str | None = None, client: Client | None = None
) -> ActorHandle:
    """The stored actor ``actor_id`` (``workflow_id=``: Ray 1.x's spelling), from any process.

    Its class is loaded from the record: imported by its name when it was importable (this
    process's code runs, checked against the recorded source by the environment policy), or as
    recorded (a class defined in ``__main__``).

    Raises:
        ActorNotFoundError: no such actor (also a WorkflowNotFoundError).
        SerializationError: its class does not load here.
    """
    aid = validate_actor_id(actor_id if actor_id is not None else workflow_id)
    client = _client(client)
    store = store_of(client)
    record = store.read_record(aid)
    if record is None:
        raise ActorNotFoundError(f"no virtual actor {aid!r} is stored", workflow_id=aid)
    stored = store.load_class(aid, record)
    check_actor_environment(
        client.store,
        aid,
        record.header.get("environment") or {},
        stored.cls if importable(stored.cls) else None,
        client.env_policy,
    )
    return ActorHandle(runtime_for(client, aid, stored.using(client)))


def list_actors(*, client: Client | None = None) -> list[tuple[str, str]]:
    """``[(actor_id, class_name), ...]`` of every stored actor, sorted by id."""
    client = _client(client)
    store = store_of(client)
    out: list[tuple[str, str]] = []
    for aid in store.actor_ids():
        record = store.read_record(aid)
        if record is not None:
            out.append((aid, str(record.header.get("class_name", "?"))))
    return out


def delete_actor(actor_id: str, *, client: Client | None = None) -> None:
    """Remove an actor: its record, state, calls (pending ones are dropped) and results.

    Raises:
        ActorNotFoundError: no such actor.
        WorkflowStillActiveError: a writer is applying one of its calls now.
    """
    aid = validate_actor_id(actor_id)
    client = _client(client)
    store = store_of(client)
    if store.read_record(aid) is None:
        raise ActorNotFoundError(f"no virtual actor {aid!r} is stored", workflow_id=aid)
    keeper = keeper_for(client)
    why = keeper.take(aid, lambda: None, wait=False)
    if why is not None:
        raise WorkflowStillActiveError(
            f"virtual actor {aid!r} is applying a call now (lease {why}); delete it when idle",
            workflow_id=aid,
        )
    try:
        store.delete_actor(aid)
        forget_runtime(client, aid)
    finally:
        keeper.release(aid)


def upgrade_actor(
    actor_id: str, actor_class: ActorClass | type | None = None, *, client: Client | None = None
) -> int:
    """Record ``actor_class`` (default: the stored class's current code) and this environment.

    Later calls run that code on the stored state (its ``__setstate__`` may migrate the state
    of an older version). Returns the actor's new version number.

    Raises:
        ActorNotFoundError: no such actor.
        ActorDefinitionError: no class given and the stored one is not importable by its name
            (defined in ``__main__``): pass the new class.
    """
    aid = validate_actor_id(actor_id)
    client = _client(client)
    store = store_of(client)
    for _ in range(10):
        record = store.read_record(aid)
        if record is None:
            raise ActorNotFoundError(f"no virtual actor {aid!r} is stored", workflow_id=aid)
        if actor_class is None:
            stored = store.load_class(aid, record)
            if not importable(stored.cls):
                raise ActorDefinitionError(
                    f"the class of actor {aid!r} ({record.header.get('class_path')}) is stored "
                    "by value (defined in __main__): pass the new class, "
                    "upgrade_actor(actor_id, NewClass)"
                )
            new = stored.using(client)
        elif isinstance(actor_class, ActorClass):
            new = actor_class.using(client)
        else:
            new = ActorClass(actor_class, client)
        _, state0 = store.record_parts(aid, record)
        version = int(record.header.get("version", 1)) + 1
        header = {
            **record.header,
            "class_name": new.cls.__qualname__,
            "class_path": class_path(new.cls),
            "version": version,
            "upgraded": time.time(),
            "environment": record_environment(client.store, new.cls),
        }
        if store.swap_record(aid, record, header, pickle_class(new), state0):
            runtime_for(client, aid, new)
            return version
    raise WorkflowStillActiveError(
        f"virtual actor {aid!r}: its record kept changing during the upgrade", workflow_id=aid
    )
