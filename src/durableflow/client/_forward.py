"""Forwarding a Client call to the part of the Client that does it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["forward"]

P = ParamSpec("P")
R = TypeVar("R")
Part = TypeVar("Part")


def forward(attribute: str, method: Callable[Concatenate[Part, P], R]) -> Callable[..., R]:
    """A method that calls ``method`` on the object in ``self.<attribute>``.

    The Client is a hub: ``cancel = forward("_stopping", Stopping.cancel)`` gives it a
    ``cancel`` with the signature, docstring and checks (mypy's too) of
    :meth:`Stopping.cancel`, while the part keeps its own state, handed to it at construction.
    """

    @functools.wraps(method)
    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(getattr(self, attribute), *args, **kwargs)

    return call
