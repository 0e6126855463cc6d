"""What ``durableflow actor show|calls`` prints, and the workers' mailbox drain.

Reading only: :func:`actor_info` and :func:`actor_calls` take no lease and write nothing.
:func:`drain_actor` is Drain of :mod:`.runtime` for an actor whose class this process loads
from its record (a worker has no handle), after the environment check of the Client's policy.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from durableflow.actors.api import _importable, _store_of, validate_actor_id
from durableflow.actors.environment import check_actor_environment
from durableflow.actors.errors import ActorNotFoundError
from durableflow.actors.records import ActorInfo, CallInfo, load_state, preview
from durableflow.actors.runtime import ActorRuntime, keeper_for, runtime_for
from durableflow.actors.store import ActorLeases

if TYPE_CHECKING:
    from durableflow.client import Client

__all__ = ["actor_calls", "actor_info", "drain_actor", "drain_mailboxes", "marked_actors"]


def _client(client: Client | None) -> Client:
    if client is not None:
        return client
    from durableflow.facade.default import client as default_client

    return default_client()


def actor_info(actor_id: str, *, client: Client | None = None) -> ActorInfo:
    """The record, last committed call, pending calls, state preview and writer of an actor.

    Raises:
        ActorNotFoundError: no such actor.
    """
    aid = validate_actor_id(actor_id)
    client = _client(client)
    store = _store_of(client)
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
    store = _store_of(client)
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
    return _store_of(client).marked()


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
    store = _store_of(client)
    record = store.read_record(actor_id)
    if record is None:
        store.clear_mailbox(actor_id)  # deleted: nothing to drain
        return 0
    stored = store.load_class(actor_id, record)
    check_actor_environment(
        client.store,
        actor_id,
        record.header.get("environment") or {},
        stored.cls if _importable(stored.cls) else None,
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
