"""Task functions of the golden stores (tests/data/golden/): pickled by reference as
``golden_tasks.<name>``; durableflow pickles a decorated task's function by value (with its
code), so the stores need this module only to be re-generated, and resuming them needs the
Python minor version that wrote them.

``DF_GOLDEN_GENERATING`` is set only by ``make_golden.py``: then ``fragile`` fails and
``crash_while_generating`` kills its process, which leaves a FAILED and a RESUMABLE workflow
that resume to a result when the test (without the variable) resumes them.
"""

from __future__ import annotations

import os
import time
from typing import Any

from durableflow import workflow


@workflow.task
def add(a: int, b: int) -> int:
    return a + b


@workflow.task
def fragile(x: int) -> int:
    if os.environ.get("DF_GOLDEN_GENERATING"):
        raise ValueError("broken while the golden store was generated")
    return x * 10


@workflow.task
def crash_while_generating(x: int) -> int:
    if os.environ.get("DF_GOLDEN_CRASH"):
        os._exit(3)
    return x + 100


@workflow.task
def countdown(n: int) -> Any:
    if n == 0:
        return "liftoff"
    return workflow.continuation(countdown.bind(n - 1))


@workflow.task
def hold(gate: str) -> str:
    """Wait (at most a minute) for the file ``gate``, which the generator makes after canceling."""
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return gate


@workflow.task
def shout(text: str) -> str:
    return text.upper()


class ArrivedListener(workflow.EventListener):
    """An external event that has already arrived: its payload at once."""

    async def poll_for_event(self, payload: str) -> str:
        return payload


def nightly_dag() -> Any:
    """The DAG factory of the schedule ``nightly``."""
    return add.bind(20, 22)
