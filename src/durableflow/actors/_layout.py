"""Every storage key of virtual actors, as pure functions (beside ``storage/layout.py``).

Layout version 1::

    v1/actors/<aid>/actor          the actor record (envelope): header = class name and path,
                                   created, version, environment; payload = the class and the
                                   state made by ``__init__`` (create-only; swapped by upgrade)
    v1/actors/<aid>/lease          the single writer's ownership record (JSON)
    v1/actors/<aid>/head           the last committed call number, a hint (JSON, may lag)
    v1/actors/<aid>/calls/<seq>    submitted call ``seq`` (envelope: method, arguments; create-only)
    v1/actors/<aid>/done/<seq>     its outcome (envelope: result or error, and the state after it;
                                   create-only -- this write *is* the commit)
    v1/actor-index/<aid>           the actor exists (empty): ``list_actors`` is one listing
    v1/actor-mailbox/<aid>         the actor may have pending calls (empty): workers drain these

``<seq>`` is zero-padded to 12 digits so that listings sort by number. The keys live here and
not in the shared layout module because the actors package owns them; the layout version is
the same.
"""

from __future__ import annotations

__all__ = [
    "SEQ_DIGITS",
    "actor_key",
    "actor_prefix",
    "call_key",
    "calls_prefix",
    "done_key",
    "done_prefix",
    "head_key",
    "index_key",
    "index_prefix",
    "lease_key",
    "mailbox_key",
    "mailbox_prefix",
    "seq_of",
]

_ROOT = "v1"
SEQ_DIGITS = 12


def actor_prefix(actor_id: str) -> str:
    """Prefix of everything stored for one actor."""
    return f"{_ROOT}/actors/{actor_id}/"


def actor_key(actor_id: str) -> str:
    """The actor record."""
    return f"{_ROOT}/actors/{actor_id}/actor"


def lease_key(actor_id: str) -> str:
    """The single writer's ownership record."""
    return f"{_ROOT}/actors/{actor_id}/lease"


def head_key(actor_id: str) -> str:
    """The hint of the last committed call number."""
    return f"{_ROOT}/actors/{actor_id}/head"


def calls_prefix(actor_id: str) -> str:
    """Prefix of the submitted calls."""
    return f"{_ROOT}/actors/{actor_id}/calls/"


def call_key(actor_id: str, seq: int) -> str:
    """Submitted call ``seq``."""
    return f"{_ROOT}/actors/{actor_id}/calls/{seq:0{SEQ_DIGITS}d}"


def done_prefix(actor_id: str) -> str:
    """Prefix of the committed outcomes."""
    return f"{_ROOT}/actors/{actor_id}/done/"


def done_key(actor_id: str, seq: int) -> str:
    """The outcome of call ``seq`` with the state after it."""
    return f"{_ROOT}/actors/{actor_id}/done/{seq:0{SEQ_DIGITS}d}"


def index_prefix() -> str:
    """Prefix of the actor index."""
    return f"{_ROOT}/actor-index/"


def index_key(actor_id: str) -> str:
    """The index entry of one actor."""
    return f"{_ROOT}/actor-index/{actor_id}"


def mailbox_prefix() -> str:
    """Prefix of the mailbox markers."""
    return f"{_ROOT}/actor-mailbox/"


def mailbox_key(actor_id: str) -> str:
    """The marker of an actor that may have pending calls."""
    return f"{_ROOT}/actor-mailbox/{actor_id}"


def seq_of(key: str) -> int | None:
    """The call number at the end of a ``calls/`` or ``done/`` key, or None."""
    tail = key.rpartition("/")[2]
    return int(tail) if tail.isdigit() else None
