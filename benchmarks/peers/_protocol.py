"""What every peer script shares: its arguments, the timings, and the result line.

Standard library only: the peer scripts run in other interpreters (a DBOS virtualenv, a Ray
Workflows one) that have neither durableflow nor the benchmarks package. Each script puts its
directory on ``sys.path`` (Python does that for a script) and imports this module.

Scenarios, the same for every engine:

- ``chain``: one workflow running N trivial tasks one after another, each taking the previous
  one's output (durableflow and Ray Workflows: a DAG of N bound tasks; DBOS: a workflow calling
  N steps); one sample is one workflow, the figure is seconds per task (median of repeats);
- ``tiny``: N workflows of one trivial task, one after another (``sequential``) and from
  ``threads`` threads at once; the figure is workflows per second (wall time, median of
  repeats).

Every workflow has a new id and runs to completion in the engine's default durable
configuration. The result is one JSON line on stdout, prefixed with ``RESULT``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PREFIX = "RESULT "


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="one engine's side of the peer comparison")
    parser.add_argument("--workdir", type=Path, required=True, help="where its storage lives")
    parser.add_argument("--chain", type=int, default=200, help="tasks in the chain")
    parser.add_argument("--workflows", type=int, default=100, help="one-task workflows per run")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    for name in ("chain", "workflows", "threads", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def chain_seconds(run_chain: Callable[[str, int], int], n: int, repeats: int) -> list[float]:
    """Seconds per task of ``repeats`` chains of ``n`` (after one warm-up chain of 10)."""
    assert run_chain("chain-warmup", 10) == 10
    samples = []
    for i in range(repeats):
        start = time.perf_counter()
        result = run_chain(f"chain-{n}-{i}", n)
        samples.append((time.perf_counter() - start) / n)
        if result != n:
            raise AssertionError(f"chain of {n} returned {result!r}")
    return samples


def tiny_rates(
    run_one: Callable[[str, int], int], n: int, threads: int, repeats: int, tag: str
) -> list[float]:
    """Workflows per second of ``repeats`` batches of ``n`` one-task workflows."""
    assert run_one(f"tiny-warmup-{tag}", 7) == 7

    def one(args: tuple[int, int]) -> None:
        batch, i = args
        result = run_one(f"tiny-{tag}-{batch}-{i}", i)
        if result != i:
            raise AssertionError(f"one-task workflow {i} returned {result!r}")

    rates = []
    for batch in range(repeats):
        start = time.perf_counter()
        if threads == 1:
            for i in range(n):
                one((batch, i))
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, [(batch, i) for i in range(n)]))
        rates.append(n / (time.perf_counter() - start))
    return rates


def run_all(
    engine: str,
    version: str,
    configuration: str,
    run_chain: Callable[[str, int], int],
    run_one: Callable[[str, int], int],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Run both scenarios, print the result line, and return it."""
    chain = chain_seconds(run_chain, args.chain, args.repeats)
    sequential = tiny_rates(run_one, args.workflows, 1, args.repeats, "seq")
    threaded = tiny_rates(run_one, args.workflows, args.threads, args.repeats, "thr")
    result = {
        "engine": engine,
        "version": version,
        "python": sys.version.split()[0],
        "configuration": configuration,
        "chain_length": args.chain,
        "workflows": args.workflows,
        "threads": args.threads,
        "chain_s_per_task": statistics.median(chain),
        "chain_samples": chain,
        "tiny_sequential_per_s": statistics.median(sequential),
        "tiny_sequential_samples": sequential,
        "tiny_threads_per_s": statistics.median(threaded),
        "tiny_threads_samples": threaded,
    }
    print(PREFIX + json.dumps(result), flush=True)
    return result
