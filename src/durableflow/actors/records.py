"""Plain data of virtual actors: what ``actor show`` and ``actor calls`` print, and state codecs.

An actor's state is its instance's ``__getstate__()`` when the class defines one, else its
``__dict__``; it is restored by ``__setstate__`` when defined, else into ``__dict__`` of an
instance made without ``__init__`` (``__init__`` runs once, at creation).
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import cloudpickle

from durableflow.errors import WorkflowError

__all__ = [
    "ActorInfo",
    "CallInfo",
    "ResultNotStorableError",
    "dump_error",
    "dump_result",
    "dump_state",
    "load_state",
    "preview",
    "restore",
    "state_of",
]

_PREVIEW = 200


def preview(value: Any, limit: int = _PREVIEW) -> str:
    """A one-line ``repr`` of ``value``, cut at ``limit`` characters."""
    try:
        text = repr(value)
    except Exception as err:  # a broken __repr__ must not break a listing
        text = f"<unprintable {type(value).__name__}: {err}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def state_of(obj: Any) -> Any:
    """The state to store for an actor instance."""
    getstate = getattr(type(obj), "__getstate__", None)
    if getstate is not None and getstate is not getattr(object, "__getstate__", None):
        return obj.__getstate__()
    return dict(obj.__dict__)


def restore(cls: type, state: Any) -> Any:
    """An instance of ``cls`` holding ``state`` (``__init__`` is not called)."""
    make: Any = cls.__new__
    obj = make(cls)
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None and getattr(cls, "__setstate__", None) is not None:
        setstate(state)
    else:
        obj.__dict__.update(state)
    return obj


def dump_state(state: Any) -> bytes:
    """The state pickled (cloudpickle: values of classes defined in ``__main__`` travel too)."""
    return bytes(cloudpickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


def load_state(data: bytes) -> Any:
    """The state back from :func:`dump_state` (the envelope around it was verified first)."""
    return pickle.loads(data)


@dataclasses.dataclass(frozen=True)
class CallInfo:
    """One call of an actor: pending, or committed with its outcome."""

    seq: int
    """Its number in the actor's call log (1, 2, ...): the order calls are applied in."""
    method: str
    """The method's name."""
    submitted: float | None
    """Unix time it was stored."""
    pending: bool
    """True while no outcome is committed."""
    ok: bool | None = None
    """True: it returned; False: it raised; None: pending."""
    started: float | None = None
    """Unix time its (last) execution started."""
    finished: float | None = None
    """Unix time its outcome was committed."""
    result: str | None = None
    """A preview of its result."""
    error: str | None = None
    """Its exception, as ``Type: message``."""
    workflow_id: str | None = None
    """The sub-workflow it ran (a method that returned a DAG), if any."""
    mode: str = "run"
    """How it was submitted: ``run`` (a caller waits) or ``send`` (nobody waits)."""

    def to_json(self) -> dict[str, Any]:
        """JSON form (``durableflow actor calls --json``)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ActorInfo:
    """What is stored for one actor."""

    actor_id: str
    class_name: str
    """The class's ``__qualname__``."""
    class_path: str
    """``module:qualname`` of the class."""
    created: float
    """Unix time of creation."""
    version: int
    """1 at creation, +1 per ``upgrade_actor``."""
    upgraded: float | None
    """Unix time of the last upgrade."""
    environment: dict[str, Any]
    """The recorded environment: Python, packages digest, class source fingerprint..."""
    committed: int
    """Number of the last committed call (0: none yet)."""
    pending: tuple[int, ...]
    """Numbers of the calls stored but not committed, in order."""
    state: str | None
    """A preview of the last committed state (None where it cannot be loaded here)."""
    owner: str | None
    """The owner of the writer's lease now, if any."""

    def to_json(self) -> dict[str, Any]:
        """JSON form (``durableflow actor show --json``)."""
        data = dataclasses.asdict(self)
        data["pending"] = list(self.pending)
        return data


def dump_result(value: Any) -> bytes:
    """A method's result pickled.

    Raises:
        ResultNotStorableError: it cannot be pickled (the call fails with this error).
    """
    try:
        return bytes(cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as err:
        raise ResultNotStorableError(
            f"the result cannot be pickled: {type(err).__name__}: {err}"
        ) from err


class ResultNotStorableError(WorkflowError):
    """A method's result that cannot be stored (the call fails with this error)."""


def dump_error(err: BaseException) -> bytes:
    """A method's exception pickled (a stand-in WorkflowError if it does not round-trip)."""
    try:
        data = bytes(cloudpickle.dumps(err, protocol=pickle.HIGHEST_PROTOCOL))
        pickle.loads(data)  # an exception that pickles but does not unpickle is replaced too
        return data
    except Exception:
        stand_in = WorkflowError(f"{type(err).__name__}: {err}")
        return bytes(cloudpickle.dumps(stand_in, protocol=pickle.HIGHEST_PROTOCOL))
