"""Latency of single storage operations per backend: p50 / p95 / p99 in milliseconds.

    python benchmarks/storage_ops.py [--ops 200] [--size 1024] [--backends file,sqlite,...]

Backends: file, file-nofsync, sqlite, sqlite-nofsync, s3-seaweedfs, s3-moto (servers started
on 127.0.0.1 for the run). Measures; never fails on a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from durableflow.storage.base import Storage
from durableflow.storage.urls import open_storage
from durableflow.testing import s3server

OPERATIONS = ("put", "get", "create", "swap", "list")


@contextmanager
def backend(name: str, workdir: str) -> Iterator[Storage]:
    if name.startswith("s3-"):
        start = {"s3-seaweedfs": s3server.start_seaweedfs, "s3-moto": s3server.start_moto}[name]
        server = start(bucket="bench")
        os.environ.update(server.environ())
        try:
            storage = open_storage(server.url("bench"))
            yield storage
            storage.close()
        finally:
            server.stop()
        return
    url = {
        "file": f"file://{workdir}/file",
        "file-nofsync": f"file://{workdir}/file-nofsync?fsync=false",
        "sqlite": f"sqlite://{workdir}/wf.db",
        "sqlite-nofsync": f"sqlite://{workdir}/wf-nofsync.db?fsync=false",
    }[name]
    storage = open_storage(url)
    yield storage
    storage.close()


def measure(call: Callable[[int], object], count: int) -> list[float]:
    times = []
    for i in range(count):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(storage: Storage, count: int, size: int) -> dict[str, list[float]]:
    value = os.urandom(size)
    storage.put("warm/up", value)  # first request opens connections
    storage.get("warm/up")
    for i in range(count):
        storage.put(f"swap/{i}", value)
    return {
        "put": measure(lambda i: storage.put(f"put/{i}", value), count),
        "get": measure(lambda i: storage.get(f"put/{i}"), count),
        "create": measure(lambda i: storage.create(f"create/{i}", value), count),
        "swap": measure(lambda i: storage.swap(f"swap/{i}", value, b"new"), count),
        "list": measure(lambda i: storage.list("put/"), max(5, count // 20)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200, help="operations of each kind")
    parser.add_argument("--size", type=int, default=1024, help="value size in bytes")
    parser.add_argument(
        "--backends", default="file,file-nofsync,sqlite,sqlite-nofsync,s3-seaweedfs,s3-moto"
    )
    args = parser.parse_args()
    print(f"{args.ops} ops of each kind, {args.size}-byte values; list over {args.ops} keys")
    print(f"{'backend':<16}{'op':<8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'ops/s':>9}")
    with tempfile.TemporaryDirectory(prefix="durableflow-bench-") as workdir:
        for name in args.backends.split(","):
            with backend(name, workdir) as storage:
                results = run(storage, args.ops, args.size)
            for op in OPERATIONS:
                times = results[op]
                rate = 1000 / statistics.fmean(times)
                print(
                    f"{name:<16}{op:<8}{percentile(times, 0.5):>9.2f}"
                    f"{percentile(times, 0.95):>9.2f}{percentile(times, 0.99):>9.2f}{rate:>9.0f}"
                )


if __name__ == "__main__":
    main()
