"""What per-task log capture costs: the 1,000-task chain with capture off, on, and printing.

    python -m benchmarks.log_capture [--length 1000] [--rounds 5] [--executor thread]

Rounds alternate ``off`` and ``on, silent`` on one file storage (the default durable
configuration: fsync), so load drifts hit both alike; the printing rounds run after them (the
files they leave would slow the next run down). Each mode's figure is its median. Modes:

- ``off``: ``DURABLEFLOW_TASK_LOGS=off`` (no capture at all);
- ``on, silent``: capture on (the default), tasks that print nothing: what every user pays;
- ``on, printing``: capture on, each task prints one line and logs one WARNING record (the
  attempt's log is then stored: one more write per task); printed to a null stream.

Then the bare cost of one captured attempt (``task_context`` with and without its call, in a
loop, no storage write). The goal of issue 13: capture slows the chain by at most 5 %. It
measures and prints; it never fails on a time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator

from durableflow import Client, workflow
from durableflow.model.calls import TaskCall
from durableflow.runtime import logcapture
from durableflow.runtime.context import task_context
from durableflow.storage.logs import logs_prefix

_log = logging.getLogger("bench.tasks")


@workflow.task
def inc(x: int) -> int:
    return x + 1


@workflow.task
def loud_inc(x: int) -> int:
    print(f"step {x}")
    _log.warning("step %d", x)
    return x + 1


def chain(length: int, *, loud: bool) -> object:
    step = loud_inc if loud else inc
    node = step.bind(0)
    for _ in range(length - 1):
        node = step.bind(node)
    return node


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Send what the tasks print (tee'd to the real stream) to a null stream."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = io.StringIO()
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def _run_chain(client: Client, length: int, mode: str, loud: bool, n: int) -> float:
    logcapture.configure(mode=mode)
    dag = chain(length, loud=loud)
    with _quiet():
        start, cpu = time.perf_counter(), time.process_time()
        result = client.run(dag, workflow_id=f"chain-{mode}-{int(loud)}-{n}")
        took, used = time.perf_counter() - start, time.process_time() - cpu
    assert result == length, result
    CPU.setdefault((mode, loud), []).append(used)
    return took


CPU: dict[tuple[str, bool], list[float]] = {}
"""CPU seconds of this process per run, by mode: steadier than wall time on a loaded machine
(with the thread executor every task runs in this process)."""


def _per_attempt(client: Client, rounds: int = 20_000) -> tuple[float, float, float]:
    """Microseconds per ``task_context`` block: no call, a silent call, a call that prints."""
    client.run(inc.bind(0), workflow_id="micro")
    call = TaskCall("micro", "t", 1, None, (), {}, {}, True, False, store=client.store)
    logcapture.configure(mode="tee")

    def timed(with_call: bool, prints: bool, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            with task_context("micro", "t", call=call if with_call else None):
                if prints:
                    print("x")
        return (time.perf_counter() - start) / n * 1e6

    with _quiet():
        bare = timed(False, False, rounds)
        silent = timed(True, False, rounds)
        printing = timed(True, True, max(rounds // 20, 100))  # stores one blob each
    return bare, silent, printing


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--executor", default="thread")
    args = parser.parse_args(argv)
    modes = [("off", False), ("tee", False), ("tee", True)]
    names = {("off", False): "off", ("tee", False): "on, silent", ("tee", True): "on, printing"}
    times: dict[tuple[str, bool], list[float]] = {m: [] for m in modes}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Client(os.path.join(tmp, "store"), executor=args.executor) as client,
    ):
        _run_chain(client, 50, "tee", True, -1)  # warm-up: imports, pools
        # First off against silent only, alternating: a printing run leaves 1,000 new files
        # whose write-back would slow whichever run follows it.
        for n in range(args.rounds):
            pair = modes[:2] if n % 2 == 0 else modes[1::-1]
            for mode, loud in pair:
                times[(mode, loud)].append(_run_chain(client, args.length, mode, loud, n))
        for n in range(args.rounds):
            times[modes[2]].append(_run_chain(client, args.length, "tee", True, n))
        logs = client.storage.list(logs_prefix("chain-tee-1-0"))
        bare, silent, printing = _per_attempt(client)
    base = statistics.median(times[("off", False)])
    print(
        f"chain of {args.length} tasks, {args.executor} executor, file storage, "
        f"median of {args.rounds} rounds (load {os.getloadavg()[0]:.2f})"
    )
    print(f"{'mode':<14} {'median s':>9} {'ms/task':>8} {'vs off':>8}  samples (s)")
    for mode in modes:
        median = statistics.median(times[mode])
        print(
            f"{names[mode]:<14} {median:>9.3f} {median / args.length * 1e3:>8.3f} "
            f"{(median / base - 1) * 100:>+7.1f}%  " + " ".join(f"{t:.2f}" for t in times[mode])
        )
    print(f"logs stored by one printing chain: {len(logs)} (one per task)")
    print(
        f"one task_context block: {bare:.2f} us without a call, {silent:.2f} us captured "
        f"(silent, +{silent - bare:.2f} us), {printing:.1f} us captured and printing "
        "(one stored blob)"
    )
    cpu_base = statistics.median(CPU[("off", False)])
    for mode in modes:
        used = statistics.median(CPU[mode])
        print(
            f"CPU of this process, {names[mode]:<13} {used:.3f} s  {used / args.length * 1e3:.3f} "
            f"ms/task  {(used / cpu_base - 1) * 100:+.1f}%"
        )
    overhead = statistics.median(times[("tee", False)]) / base - 1
    verdict = "met" if overhead <= 0.05 else "missed"
    print(f"goal: capture on costs <= 5 % of the silent chain: {overhead * 100:+.1f}% ({verdict})")


if __name__ == "__main__":
    main()
