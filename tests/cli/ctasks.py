"""Task functions of the CLI tests; the CLI subprocesses import them (PYTHONPATH)."""

from __future__ import annotations

import os
import time

from durableflow import workflow


@workflow.task
def answer(x: int) -> dict[str, int]:
    return {"answer": x}


@workflow.task
def plus_one(x: int) -> int:
    return x + 1


@workflow.task
def outer(x: int):  # type: ignore[no-untyped-def]
    """Continues into plus_one(answer) — a continuation under its parent in ``show``."""
    return workflow.continuation(plus_one.options(task_id="inner").bind(x))


@workflow.task
def fail_unless(flag: str, value: int) -> int:
    if not os.path.exists(flag):
        raise ValueError(f"boom: {os.path.basename(flag)} is missing")
    return value


@workflow.task
def wait_file(path: str, value: int) -> int:
    while not os.path.exists(path):
        time.sleep(0.01)
    return value


@workflow.task
def opaque() -> object:
    return object.__new__(Opaque)


class Opaque:
    """Not JSON-serializable."""


def nightly():  # type: ignore[no-untyped-def]
    """A schedule's DAG factory."""
    return answer.bind(7)


@workflow.task
def big_text(n: int) -> str:
    return "x" * (n - 1) + "!"


@workflow.task
def big_bytes(n: int) -> bytes:
    return bytes(range(256)) * (n // 256)


@workflow.task
def big_list(n: int) -> list[int]:
    return list(range(n))
