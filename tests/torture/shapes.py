"""Workflow shapes of the torture test: task functions, DAG builders and expected outputs.

Every process of a round (runners, resumers, the harness) imports this module under the same
name, ``torture.shapes``, so pickled task references resolve everywhere. A shape is described
by a JSON-able ``spec`` dict; :func:`build` turns it into a DAG and :func:`expected` says what
the workflow must return. Every task execution appends one line to the round's execution log
(``ctx["log"]``) with ``O_APPEND``::

    <workflow id> <task id> <attempt> <pid> <unix time>

which the invariant checks compare with the checkpoints found in storage. The ``gate`` shape's
middle task fails for good (the workflow ends FAILED) while ``dir/heal`` is missing, until the
harness creates it: FAILED workflows get resumed, and a paused runner can wake up inside a
failing task while another process finished the workflow. ``attempt`` counts
the executions of that task id in this round so far (the per-task counter file), 1-based.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from durableflow import workflow

SHAPES = (
    "chain",
    "fanout",
    "continuation",
    "loop",
    "retry",
    "catch",
    "sleep",
    "event",
    "nocheckpoint",
    "mixed",
    "gate",
)

EVENT_VALUE = 7  # what the event file of an ``event`` round holds


class FlakyError(RuntimeError):
    """Raised by a flaky task on its first ``fail_first`` executions."""


class GateClosed(RuntimeError):
    """Raised by a gated task that started before the harness opened its gate."""


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _count_file(ctx: dict[str, Any], tid: str) -> int:
    """Append one byte to the task's counter file; return how many bytes it now holds."""
    path = os.path.join(ctx["dir"], f"count-{tid}")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b".")
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def record(ctx: dict[str, Any], tid: str) -> int:
    """Log one execution of task ``tid``; return its attempt number (1-based, per round)."""
    attempt = _count_file(ctx, tid)
    _append(ctx["log"], f"{ctx['wid']} {tid} {attempt} {os.getpid()} {time.time():.6f}\n")
    delay = float(ctx.get("delay", 0.0))
    if delay:
        time.sleep(delay * (0.5 + random.random()))
    return attempt


def _ints(values: tuple[Any, ...]) -> int:
    return sum(v for v in values if isinstance(v, int))


@workflow.task
def step(ctx: dict[str, Any], tid: str, base: int, *inputs: Any) -> int:
    """``base`` plus the sum of the integer inputs."""
    record(ctx, tid)
    return base + _ints(inputs)


@workflow.task
def flaky(ctx: dict[str, Any], tid: str, fail_first: int, *inputs: Any) -> int:
    """Fails its first ``fail_first`` executions (counted across processes), then 1 + inputs."""
    if record(ctx, tid) <= fail_first:
        raise FlakyError(f"{tid} fails on purpose")
    return 1 + _ints(inputs)


@workflow.task
def gated(ctx: dict[str, Any], tid: str, *inputs: Any) -> int:
    """Fails (no retry: the workflow ends FAILED) if it starts before ``dir/heal`` exists."""
    healed = os.path.exists(os.path.join(ctx["dir"], "heal"))
    record(ctx, tid)
    if not healed:
        raise GateClosed(f"{tid}: the gate is closed")
    return 1 + _ints(inputs)


@workflow.task
def boom(ctx: dict[str, Any], tid: str) -> int:
    """Always raises (used with catch_exceptions=True)."""
    record(ctx, tid)
    raise ValueError(f"{tid} always fails")


@workflow.task
def unwrap(ctx: dict[str, Any], tid: str, caught: Any, ok: Any) -> int:
    """100 if ``caught`` is ``(None, ValueError)`` and ``ok`` is ``(5, None)``, else -1."""
    record(ctx, tid)
    good = (
        isinstance(caught, tuple)
        and caught[0] is None
        and isinstance(caught[1], ValueError)
        and ok == (5, None)
    )
    return 100 if good else -1


@workflow.task
def five(ctx: dict[str, Any], tid: str) -> int:
    """5 (a caught task that succeeds)."""
    record(ctx, tid)
    return 5


@workflow.task
def mul(ctx: dict[str, Any], tid: str, n: int, rest: int) -> int:
    """``n * rest``."""
    record(ctx, tid)
    return n * rest


@workflow.task
def fact(ctx: dict[str, Any], prefix: str, n: int) -> Any:
    """n! as a continuation recursion: ``mul(n, fact(n - 1))``, each level a continuation."""
    record(ctx, f"{prefix}-fact{n}")
    if n <= 1:
        return 1
    inner = fact.options(task_id=f"{prefix}-fact{n - 1}").bind(ctx, prefix, n - 1)
    return workflow.continuation(
        mul.options(task_id=f"{prefix}-mul{n}").bind(ctx, f"{prefix}-mul{n}", n, inner)
    )


@workflow.task
def countdown(ctx: dict[str, Any], prefix: str, n: int, acc: int) -> Any:
    """Tail-recursive continuation loop: ``acc + n + (n - 1) + ... + 1``."""
    record(ctx, f"{prefix}-cd{n}")
    if n <= 0:
        return acc
    nxt = countdown.options(task_id=f"{prefix}-cd{n - 1}")
    return workflow.continuation(nxt.bind(ctx, prefix, n - 1, acc + n))


class FileEvent(workflow.EventListener):
    """An external event: the file ``path`` appearing (written whole by the harness)."""

    async def poll_for_event(self, path: str) -> int:
        while not os.path.exists(path):
            await asyncio.sleep(0.01)
        return int(Path(path).read_text())


def _fact(ctx: dict[str, Any], prefix: str, n: int) -> Any:
    return fact.options(task_id=f"{prefix}-fact{n}").bind(ctx, prefix, n)


def _countdown(ctx: dict[str, Any], prefix: str, n: int) -> Any:
    return countdown.options(task_id=f"{prefix}-cd{n}").bind(ctx, prefix, n, 0)


def _step(ctx: dict[str, Any], tid: str, base: int, *inputs: Any, **options: Any) -> Any:
    return step.options(task_id=tid, **options).bind(ctx, tid, base, *inputs)


def _flaky(ctx: dict[str, Any], tid: str, fail_first: int, *inputs: Any) -> Any:
    opts = {"task_id": tid, "retry_exceptions": True, "max_retries": fail_first + 3}
    return flaky.options(**opts).bind(ctx, tid, fail_first, *inputs)


def _catch(ctx: dict[str, Any], prefix: str) -> Any:
    caught = boom.options(task_id=f"{prefix}-boom", catch_exceptions=True).bind(
        ctx, f"{prefix}-boom"
    )
    ok = five.options(task_id=f"{prefix}-five", catch_exceptions=True).bind(ctx, f"{prefix}-five")
    return unwrap.options(task_id=f"{prefix}-unwrap").bind(ctx, f"{prefix}-unwrap", caught, ok)


def context(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``ctx`` argument every task of the spec receives."""
    return {k: spec[k] for k in ("wid", "log", "dir", "delay")}


def build(spec: dict[str, Any]) -> Any:
    """The DAG of ``spec``; ``spec["variant"]`` shifts every base value (a different DAG)."""
    ctx = context(spec)
    shape, n, v = spec["shape"], int(spec["n"]), int(spec.get("variant", 0))
    if shape == "chain":
        node = _step(ctx, "c0", 1 + v)
        for i in range(1, n):
            node = _step(ctx, f"c{i}", 1, node)
        return node
    if shape == "fanout":
        leaves = [_step(ctx, f"f{i}", i + v) for i in range(n)]
        return _step(ctx, "f-sum", 0, *leaves)
    if shape == "continuation":
        return _step(ctx, "k-out", v, _fact(ctx, "k", n))
    if shape == "loop":
        return _step(ctx, "l-out", v, _countdown(ctx, "l", n))
    if shape == "retry":
        a = _step(ctx, "r-a", 1 + v)
        b = _flaky(ctx, "r-b", int(spec["fail_first"]), a)
        return _step(ctx, "r-c", 1, b)
    if shape == "catch":
        return _step(ctx, "x-out", v, _catch(ctx, "x"))
    if shape == "sleep":
        a = _step(ctx, "s-a", 1 + v)
        nap = workflow.sleep(float(spec["sleep"]))
        return _step(ctx, "s-b", 1, a, nap)
    if shape == "event":
        a = _step(ctx, "e-a", 1 + v)
        event = workflow.wait_for_event(FileEvent, os.path.join(spec["dir"], "event"))
        return _step(ctx, "e-b", 1, a, event)
    if shape == "nocheckpoint":
        a = _step(ctx, "n-a", 1 + v)
        b = _step(ctx, "n-b", 1, a, checkpoint=False)
        return _step(ctx, "n-c", 1, b)
    if shape == "gate":
        a = _step(ctx, "g-a", 1 + v)
        gate = gated.options(task_id="g-gate").bind(ctx, "g-gate", a)
        return _step(ctx, "g-out", 1, gate)
    if shape == "mixed":
        a = _step(ctx, "m-a", 1 + v)
        fan = [_step(ctx, f"m-f{i}", i, a) for i in range(n)]
        flk = _flaky(ctx, "m-flaky", int(spec["fail_first"]), *fan)
        return _step(ctx, "m-out", 0, flk, _fact(ctx, "m", 3), _catch(ctx, "m"))
    raise ValueError(f"unknown shape {shape!r}")


def expected(spec: dict[str, Any]) -> int:
    """The output the workflow of ``spec`` must return."""
    shape, n, v = spec["shape"], int(spec["n"]), int(spec.get("variant", 0))
    if shape == "chain":
        return n + v
    if shape == "fanout":
        return sum(range(n)) + n * v
    if shape == "continuation":
        return math.factorial(n) + v
    if shape == "loop":
        return n * (n + 1) // 2 + v
    if shape == "retry":
        return 1 + v + 1 + 1
    if shape == "catch":
        return 100 + v
    if shape == "gate":
        return 3 + v
    if shape in ("sleep", "nocheckpoint"):
        return 1 + v + 1 + (1 if shape == "nocheckpoint" else 0)
    if shape == "event":
        return 1 + v + 1 + EVENT_VALUE
    if shape == "mixed":
        fan = sum(i + 1 + v for i in range(n))
        return 1 + fan + 6 + 100
    raise ValueError(f"unknown shape {shape!r}")


def make_spec(rng: random.Random, shape: str, wid: str, round_dir: str) -> dict[str, Any]:
    """A random spec of ``shape`` for one round (sizes and delays from ``rng``)."""
    spec: dict[str, Any] = {
        "shape": shape,
        "wid": wid,
        "dir": round_dir,
        "log": os.path.join(round_dir, "executions.log"),
        "delay": rng.choice((0.0, 0.02, 0.05, 0.1)),
        "n": rng.randint(2, 6),
        "fail_first": rng.randint(1, 2),
        "sleep": rng.choice((0.2, 0.5)),
    }
    if shape in ("continuation", "loop"):
        spec["n"] = rng.randint(3, 7)
    if shape == "gate":
        spec["delay"] = max(float(spec["delay"]), 0.05)
    return spec
