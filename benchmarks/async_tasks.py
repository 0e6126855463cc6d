"""Async tasks: N concurrent ``asyncio.sleep`` tasks, one shared loop vs one loop per thread.

    python -m benchmarks.async_tasks [--tasks 1000] [--sleep 1.0] [--threads 32] [--rounds 3]

Modes, each a fan-out of ``--tasks`` tasks that each sleep ``--sleep`` seconds, on file
storage (fsync, the default durable configuration), thread executor:

- ``shared loop``: ``async def`` tasks, as durableflow runs them on the thread executor: one
  event loop for every async attempt of the process (the wait service's), no pool thread each;
- ``loop per thread``: the same coroutine wrapped in a plain task that runs it with
  ``asyncio.run`` on its pool thread (what a loop per worker thread gives): at most
  ``--threads`` sleep at once;
- ``trivial async`` / ``trivial sync``: the per-task cost of an async task that returns at once
  against a plain one (a 1,000-task fan-out), i.e. what the loop hop costs.

Issue 15's goal: 1,000 concurrent ``asyncio.sleep(1)`` tasks finish in about 1 s. It measures
and prints; it never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from durableflow import Client, workflow
from durableflow.executors.local import ThreadExecutor


@workflow.task
async def nap(i: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return i


@workflow.task
def nap_on_own_loop(i: int, seconds: float) -> int:
    async def body() -> int:
        await asyncio.sleep(seconds)
        return i

    return asyncio.run(body())


@workflow.task
async def async_noop(i: int) -> int:
    return i


@workflow.task
def sync_noop(i: int) -> int:
    return i


@workflow.task
def total(*values: int) -> int:
    return sum(values)


def _time(threads: int, make: object, tasks: int, *args: object) -> float:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Client(f"{tmp}/store", executor=ThreadExecutor(threads)) as client,
    ):
        dag = total.bind(*[make.options(task_id=f"t{i}").bind(i, *args) for i in range(tasks)])  # type: ignore[attr-defined]
        start = time.perf_counter()
        assert client.run(dag, workflow_id="bench") == sum(range(tasks))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-per-thread", action="store_true", help="skip the slow mode")
    args = parser.parse_args()
    modes: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        modes.setdefault("shared loop", []).append(_time(args.threads, nap, args.tasks, args.sleep))
        if not args.skip_per_thread:
            modes.setdefault("loop per thread", []).append(
                _time(args.threads, nap_on_own_loop, args.tasks, args.sleep)
            )
        modes.setdefault("trivial async", []).append(_time(args.threads, async_noop, args.tasks))
        modes.setdefault("trivial sync", []).append(_time(args.threads, sync_noop, args.tasks))
    print(
        f"{args.tasks} tasks, sleep {args.sleep} s, {args.threads} threads, "
        f"{args.rounds} rounds (median, min):"
    )
    for mode, times in modes.items():
        print(f"  {mode:16} {statistics.median(times):7.3f} s  {min(times):7.3f} s")
    shared = statistics.median(modes["shared loop"])
    print(f"goal (~1 s for 1,000 x asyncio.sleep(1)): shared loop {shared:.2f} s")


if __name__ == "__main__":
    main()
