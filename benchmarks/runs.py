"""Scenarios that run workflows: chain, fan-out, tiny workflows, payloads (issue 6: 1-3, 6, 7)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks import tasks
from benchmarks.context import Context, Result, python_seconds
from benchmarks.harness import CountingStorage, Measurement, measure
from durableflow.model.dag import TaskNode
from durableflow.storage.layout import outputs_prefix


def chain_dag(n: int) -> TaskNode:
    node = tasks.inc.bind(0)
    for _ in range(n - 1):
        node = tasks.inc.bind(node)
    return node


def fanout_dag(n: int) -> TaskNode:
    return tasks.gather.bind(*[tasks.source.bind(i) for i in range(n)])


def _python_chain(n: int) -> None:
    x = 0
    for _ in range(n):
        x = tasks.inc_fn(x)
    assert x == n


def _python_fanout(n: int) -> None:
    assert tasks.gather_fn(*[tasks.source_fn(i) for i in range(n)]) == n


def _python_tiny(n: int) -> None:
    for i in range(n):
        tasks.one_fn(i)


def _ray_seconds(kind: str, n: int, repeats: int) -> float:
    """The same DAG as plain ``ray.remote`` calls (the Ray executor's configs only)."""
    import ray

    inc = ray.remote(tasks.inc_fn)
    source = ray.remote(tasks.source_fn)
    gather = ray.remote(tasks.gather_fn)

    def chain() -> None:
        ref = inc.remote(0)
        for _ in range(n - 1):
            ref = inc.remote(ref)
        assert ray.get(ref) == n

    def fanout() -> None:
        assert ray.get(gather.remote(*[source.remote(i) for i in range(n)])) == n

    run = chain if kind == "chain" else fanout
    run()  # warm the workers
    return python_seconds(run, repeats)


def _worker_bytes(storage: CountingStorage, ctx: Context) -> Callable[[Any], int] | None:
    """Outputs written by executor workers in other processes, read back after the run."""
    if ctx.config.executor == "thread":
        return None

    def stored(state: Any) -> int:
        workflow_id = state[1]
        prefix = outputs_prefix(workflow_id)
        return sum(len(storage.inner.get(key) or b"") for key in storage.inner.list(prefix))

    return stored


def _warm_up(ctx: Context) -> None:
    _, client = ctx.counted_client("warmup")
    client.run(chain_dag(20), workflow_id="warmup-chain")
    client.run(fanout_dag(20), workflow_id="warmup-fanout")
    ctx.close_client(client)
    ctx.backend.remove("warmup")


def _dag_scenario(ctx: Context, kind: str, sizes: tuple[int, ...]) -> list[Result]:
    build = chain_dag if kind == "chain" else fanout_dag
    python = _python_chain if kind == "chain" else _python_fanout
    results = []
    for n in ctx.sizes(sizes):
        name = f"{kind}-{n}"
        storage, client = ctx.counted_client(name)
        expected = n

        def setup(i: int, n: int = n) -> tuple[TaskNode, str]:
            return build(n), f"{kind}-{n}-{i}"

        def run(
            state: tuple[TaskNode, str], client: Any = client, expected: int = expected
        ) -> None:
            dag, workflow_id = state
            assert client.run(dag, workflow_id=workflow_id) == expected

        m = measure(
            run,
            repeats=ctx.repeats(n),
            setup=setup,
            storage=storage,
            sync=ctx.sync,
            extra_bytes=_worker_bytes(storage, ctx),
        )
        ctx.close_client(client)
        ctx.backend.remove(name)
        tasks_per_run = n if kind == "chain" else n + 1
        baselines: dict[str, float | None] = {
            "python": python_seconds(functools.partial(python, n), ctx.profile.repeats)
        }
        if ctx.ray:
            baselines["ray.remote"] = _ray_seconds(kind, n, ctx.repeats(n))
        # One write per task straight to the backend: the floor any checkpointing engine pays.
        baselines["raw writes"] = ctx.raw_writes(
            tasks_per_run, 100, threads=1 if kind == "chain" else 8
        )
        results.append(
            ctx.result(
                kind,
                "run",
                n,
                "tasks",
                m,
                sample_unit="run",
                items=tasks_per_run,
                per_unit="task",
                rate_count=tasks_per_run,
                rate_unit="tasks/s",
                baselines={k: v for k, v in baselines.items() if v is not None},
                baseline="ray.remote" if ctx.ray else "python",
                notes=["time of Client.run(dag): flatten, store specs, run, checkpoint each task"],
            )
        )
    return results


def chain(ctx: Context) -> list[Result]:
    """1. A chain of N trivial tasks: per-task overhead."""
    _warm_up(ctx)
    return _dag_scenario(ctx, "chain", ctx.profile.chain)


def fanout(ctx: Context) -> list[Result]:
    """2. N trivial tasks and one gather: total time and the driver's peak memory."""
    return _dag_scenario(ctx, "fanout", ctx.profile.fanout)


def tiny(ctx: Context) -> list[Result]:
    """3. N one-task workflows, one after another and from several threads: workflows/s."""
    results = []
    threads = ctx.profile.tiny_threads
    for n in ctx.sizes(ctx.profile.tiny, cap=ctx.config.max_workflows or ctx.config.max_size):
        for variant, workers in (("sequential", 1), (f"{threads} threads", threads)):
            name = f"tiny-{n}-{workers}"
            storage, client = ctx.counted_client(name)
            client.run(tasks.one.bind(0), workflow_id="warmup")
            latencies: list[float] = []
            lock = threading.Lock()
            wall: list[float] = []

            def one(
                i: int,
                client: Any = client,
                lock: threading.Lock = lock,
                latencies: list[float] = latencies,
            ) -> None:
                start = time.perf_counter()
                assert client.run(tasks.one.bind(i), workflow_id=f"tiny-{i}") == i
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)

            def run(
                _: Any, n: int = n, workers: int = workers, one: Any = one, wall: list[float] = wall
            ) -> None:
                start = time.perf_counter()
                if workers == 1:
                    for i in range(n):
                        one(i)
                else:
                    with ThreadPoolExecutor(workers) as pool:
                        list(pool.map(one, range(n)))
                wall.append(time.perf_counter() - start)

            batch = measure(run, repeats=1, storage=storage, sync=ctx.sync)
            ctx.close_client(client)
            ctx.backend.remove(name)
            m = Measurement(
                samples=latencies,
                peak_rss=batch.peak_rss,
                rss_before=batch.rss_before,
                bytes_written=batch.bytes_written / n,
                writes=batch.writes / n,
                fsyncs=batch.fsyncs / n,
            )
            baselines = {
                "python": python_seconds(functools.partial(_python_tiny, n)),
                "raw writes": ctx.raw_writes(n, 100, threads=workers),
            }
            results.append(
                ctx.result(
                    "tiny",
                    variant,
                    n,
                    "workflows",
                    m,
                    sample_unit="workflow",
                    items=n,
                    per_unit="workflow",
                    total_s=wall[0],
                    rate_count=n,
                    rate_unit="workflows/s",
                    baselines={k: v for k, v in baselines.items() if v is not None},
                    baseline="raw writes" if baselines["raw writes"] is not None else "python",
                    notes=[
                        "median/p95: latency of one Client.run; per workflow: wall time / N",
                        "bytes, writes and fsyncs are per workflow",
                    ],
                )
            )
    return results


def payload(ctx: Context) -> list[Result]:
    """6. A chain passing a big value from task to task: MB/s against writing it directly."""
    size = ctx.profile.payload_bytes
    mb = size / 2**20
    results = []
    for length in ctx.profile.payload_lengths:
        name = f"payload-{length}"
        storage, client = ctx.counted_client(name)

        def setup(i: int, length: int = length) -> tuple[TaskNode, str]:
            node = tasks.make_payload.bind(size)
            for _ in range(length - 1):
                node = tasks.pass_on.bind(node)
            return node, f"payload-{length}-{i}"

        def run(state: tuple[TaskNode, str], client: Any = client) -> None:
            dag, workflow_id = state
            assert len(client.run(dag, workflow_id=workflow_id)) == size

        m = measure(
            run,
            repeats=ctx.config.repeats or ctx.profile.repeats_large,
            setup=setup,
            storage=storage,
            sync=ctx.sync,
            extra_bytes=_worker_bytes(storage, ctx),
        )
        ctx.close_client(client)
        ctx.backend.remove(name)
        direct = ctx.raw_writes(length, size) if ctx.config.storage != "memory" else None
        if direct is None:
            from benchmarks.context import _raw_files

            direct = _raw_files(ctx.workdir / "raw-payload", False, length, size, 1)
        results.append(
            ctx.result(
                "payload",
                f"{mb:g} MB",
                length,
                "tasks",
                m,
                sample_unit="run",
                items=length,
                per_unit="task",
                rate_count=length * mb,
                rate_unit="MB/s",
                baselines={"direct write": direct},
                baseline="direct write",
                notes=[
                    f"each task returns a {mb:g} MB value that the next one reads",
                    "direct write: the same bytes written to the backend without durableflow"
                    + (" (to a file, no fsync)" if ctx.config.storage == "memory" else ""),
                ],
            )
        )
    return results
