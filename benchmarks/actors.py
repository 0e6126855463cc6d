"""Virtual actors: calls per second on one actor, against a one-task workflow (issue 16).

Usage::

    python -m benchmarks.actors [--backends file,sqlite,s3,ray] [--calls 200] [--json OUT]

For each backend (S3: a SeaweedFS server started on 127.0.0.1 for the run; ``ray``: file
storage and a Client on the Ray runner, so calls are applied by the coordinator of a local Ray
started for the run, 2 CPUs, and each body is a Ray task), on a fresh storage:

- ``mutating``: ``counter.incr.run(1)`` one after another, from one thread;
- ``mutating x8``: the same calls from 8 threads at once (one actor: they queue);
- ``readonly``: ``counter.get.run()`` one after another;
- ``one-task workflow``: ``client.run(one.bind(i), workflow_id=...)`` one after another, the
  cost a mutating call is compared with (the issue's goal: no more than it; on ``ray`` a
  workflow on the coordinator, its task a Ray task).

It prints calls per second and the median cost of one call (ms); it measures and never fails
on a time. Each number is the best of ``--repeat`` rounds (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from durableflow import Client, workflow
from durableflow.actors import virtual_actor


@virtual_actor
class BenchCounter:
    """The issue's counter."""

    def __init__(self) -> None:
        self.value = 0

    def incr(self, n: int = 1) -> int:
        self.value += n
        return self.value

    @virtual_actor.readonly
    def get(self) -> int:
        return self.value


@workflow.task
def one(i: int) -> int:
    """A one-task workflow's only task."""
    return i


@contextmanager
def storage_url(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh storage of ``backend`` for one measurement."""
    if backend in ("file", "ray"):
        yield str(workdir / f"{backend}-{uuid.uuid4().hex[:8]}")
    elif backend == "sqlite":
        yield f"sqlite://{workdir / f'{uuid.uuid4().hex[:8]}.db'}"
    elif backend == "s3":
        yield _s3().url(f"bench/{uuid.uuid4().hex}")
    else:
        raise ValueError(f"unknown backend {backend!r}; expected file, sqlite, s3 or ray")


def open_client(backend: str, url: str) -> Client:
    """The Client of one measurement: on the Ray runner for ``ray`` (a local Ray started)."""
    if backend != "ray":
        return Client(url)
    import ray

    if not ray.is_initialized():
        root = str(Path(__file__).resolve().parents[1])  # workers import benchmarks.actors
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            logging_level="ERROR",
            runtime_env={"env_vars": {"PYTHONPATH": root}},
        )
    return Client(url, executor="ray", runner="ray")


_server: Any = None


def _s3() -> Any:
    global _server
    if _server is None:
        import os

        from durableflow.testing.s3server import S3Server, start_seaweedfs

        for name, value in S3Server("any", "", "").environ().items():
            os.environ[name] = value
        _server = start_seaweedfs(bucket="durableflow-bench")
    return _server


def _per_call(fn: Callable[[int], Any], calls: int) -> list[float]:
    out = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def measure(backend: str, calls: int, workdir: Path) -> dict[str, dict[str, float]]:
    """One round on ``backend``: every kind of call, ``calls`` times each."""
    results: dict[str, dict[str, float]] = {}
    with storage_url(backend, workdir) as url, open_client(backend, url) as client:
        counter = BenchCounter.using(client).get_or_create("bench")  # type: ignore[attr-defined]
        counter.incr.run(1)  # warm: record, environment, connections
        times = _per_call(lambda _: counter.incr.run(1), calls)
        results["mutating"] = _row(times)

        per_thread = max(1, calls // 8)
        start = time.perf_counter()

        def burst() -> None:
            for _ in range(per_thread):
                counter.incr.run(1)

        threads = [threading.Thread(target=burst) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        total = per_thread * 8
        results["mutating x8"] = {"per_s": total / elapsed, "median_ms": 1000 * elapsed / total}

        times = _per_call(lambda _: counter.get.run(), calls)
        results["readonly"] = _row(times)

        client.run(one.bind(-1), workflow_id="warm")
        times = _per_call(lambda i: client.run(one.bind(i), workflow_id=f"one-{i}"), calls)
        results["one-task workflow"] = _row(times)
    return results


def _row(times: list[float]) -> dict[str, float]:
    return {"per_s": len(times) / sum(times), "median_ms": 1000 * statistics.median(times)}


def _best(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        kind: max((r[kind] for r in rounds), key=lambda row: row["per_s"]) for kind in rounds[0]
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table, and return (and optionally write) the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="file,sqlite,s3")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"calls": args.calls, "results": {}}
    with tempfile.TemporaryDirectory(prefix="df-bench-actors-") as tmp:
        for backend in args.backends.split(","):
            rounds = [measure(backend, args.calls, Path(tmp)) for _ in range(args.repeat)]
            out["results"][backend] = _best(rounds)
    if _server is not None:
        _server.stop()
    print(f"{'backend':8} {'kind':18} {'calls/s':>10} {'median ms':>10}")
    for backend, rows in out["results"].items():
        for kind, row in rows.items():
            print(f"{backend:8} {kind:18} {row['per_s']:10.1f} {row['median_ms']:10.3f}")
        ratio = rows["mutating"]["median_ms"] / rows["one-task workflow"]["median_ms"]
        out["results"][backend]["mutating / one-task workflow"] = {"ratio": ratio}
        print(f"{backend:8} mutating call / one-task workflow: {ratio:.2f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
