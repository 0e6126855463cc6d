"""Task functions of the dashboard tests; worker subprocesses import them (``--path``)."""

from __future__ import annotations

import os
import time
from typing import Any

from durableflow import workflow


@workflow.task
def source(x: int) -> int:
    return x


@workflow.task
def add(*xs: int) -> int:
    return sum(xs)


@workflow.task
def fail_unless(flag: str, value: int) -> int:
    """Fails (a ValueError with a traceback) until ``flag`` exists."""
    if not os.path.exists(flag):
        raise ValueError(f"boom: {os.path.basename(flag)} is missing")
    return value


@workflow.task
def flaky(counter: str, failures: int) -> str:
    """Fails its first ``failures`` attempts (counted in the file ``counter``), then succeeds."""
    done = 0
    if os.path.exists(counter):
        with open(counter) as seen:
            done = int(seen.read())
    with open(counter, "w") as out:
        out.write(str(done + 1))
    print(f"attempt {done + 1}: fetching the report")
    time.sleep(0.08)  # long enough for the attempt record (RECORD_AFTER)
    if done < failures:
        print(f"attempt {done + 1}: the server said 503, giving up on this attempt")
        raise RuntimeError(f"attempt {done + 1} fails")
    return "finally"


@workflow.task
def quick_flaky(counter: str, failures: int) -> str:
    """``flaky`` without the pause: its successful attempt ends before any record is due."""
    done = 0
    if os.path.exists(counter):
        with open(counter) as seen:
            done = int(seen.read())
    with open(counter, "w") as out:
        out.write(str(done + 1))
    if done < failures:
        raise RuntimeError(f"attempt {done + 1} fails")
    return "finally"


@workflow.task
def wait_file(path: str, value: int) -> int:
    while not os.path.exists(path):
        time.sleep(0.01)
    return value


@workflow.task
def shout(text: str) -> str:
    raise ValueError(text)


@workflow.task
def big(n: int) -> Any:
    return b"x" * n


@workflow.task
def outer(x: int) -> Any:
    return workflow.continuation(add.options(task_id="inner").bind(x, 1))


def diamond(value: int = 1) -> Any:
    a = source.options(task_id="a").bind(value)
    b = add.options(task_id="b").bind(a, 1)
    c = add.options(task_id="c").bind(a, 2)
    return add.options(task_id="d").bind(b, c)


@workflow.task
def chatter(word: str, folder: str) -> str:
    """Prints 20 ``word`` lines, interleaved with the other chatter of the fan-out."""
    open(os.path.join(folder, word), "w").close()
    deadline = time.monotonic() + 5
    while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)  # both started: they run at the same time
    for i in range(20):
        print(f"{word} line {i}", flush=True)
        time.sleep(0.005)
    return word


@workflow.task
def collect(*words: str) -> list[str]:
    return list(words)


def two_chatters(folder: str) -> Any:
    ping = chatter.options(task_id="ping").bind("ping", folder)
    pong = chatter.options(task_id="pong").bind("pong", folder)
    return collect.options(task_id="both").bind(ping, pong)
