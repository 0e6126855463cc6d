"""The task functions the scenarios run (importable, so they pickle by reference)."""

from __future__ import annotations

import os
import random

from durableflow import task


def inc_fn(x: int) -> int:
    return x + 1


def source_fn(i: int) -> int:
    return i


def gather_fn(*values: int) -> int:
    return len(values)


def one_fn(x: int) -> int:
    return x


def fail_if_fn(x: int, marker: str) -> int:
    """The last task of the resume scenario: fails while ``marker`` exists."""
    if os.path.exists(marker):
        raise RuntimeError(f"benchmark failure while {marker} exists")
    return x + 1


def make_payload_fn(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def pass_on_fn(payload: bytes) -> bytes:
    return payload


inc = task(inc_fn)
source = task(source_fn)
gather = task(gather_fn)
one = task(one_fn)
fail_if = task(fail_if_fn)
make_payload = task(make_payload_fn)
pass_on = task(pass_on_fn)
