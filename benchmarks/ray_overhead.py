"""Per-task overhead of durableflow on Ray, next to a plain ``ray.remote`` chain.

    python benchmarks/ray_overhead.py [--length 200] [--repeats 5] [--storage DIR]

One run, one local Ray (``address="local"``, 2 CPUs): the same chain of ``length`` tasks
(``inc(inc(...inc(0)))``), measured as

- ``ray.remote``: plain Ray, ``inc.remote(ref)`` chained, one ``ray.get`` at the end;
- ``durableflow (coordinator)``: ``workflow.run`` of the Ray DAG, driven by the in-cluster
  coordinator, every task checkpointed to file storage;
- ``durableflow (driver)``: ``Client(executor="ray")``, the engine in this process.

It prints the median time of each and the overhead per task over plain Ray. It measures and
prints; it never fails on a time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import ray

from durableflow import Client, workflow


@ray.remote
def inc(x: int) -> int:
    return x + 1


def chain(length: int):  # type: ignore[no-untyped-def]
    node = inc.bind(0)
    for _ in range(length - 1):
        node = inc.bind(node)
    return node


def median_seconds(run: Callable[[int], None], repeats: int) -> float:
    run(-1)  # warm: workers started, functions exported, coordinator up
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--storage", default=None, help="a directory (default: a temp dir)")
    args = parser.parse_args()
    n = args.length
    storage = args.storage or tempfile.mkdtemp(prefix="df-ray-overhead-")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")

    def plain(_: int) -> None:
        ref = inc.remote(0)
        for _ in range(n - 1):
            ref = inc.remote(ref)
        assert ray.get(ref) == n

    workflow.init(storage, executor="ray")

    def coordinated(i: int) -> None:
        assert workflow.run(chain(n), workflow_id=f"coordinated-{i}") == n

    driver_client = Client(storage, executor="ray")

    def driven(i: int) -> None:
        assert driver_client.run(chain(n), workflow_id=f"driven-{i}") == n

    results = {
        "ray.remote": median_seconds(plain, args.repeats),
        "durableflow (coordinator)": median_seconds(coordinated, args.repeats),
        "durableflow (driver)": median_seconds(driven, args.repeats),
    }
    driver_client.close()
    workflow.shutdown()
    baseline = results["ray.remote"]
    print(
        f"chain of {n} tasks, median of {args.repeats} runs, Ray {ray.__version__}, "
        f"storage {storage}"
    )
    print(f"{'':28} {'total s':>9} {'per task ms':>12} {'overhead/task ms':>17}")
    for name, seconds in results.items():
        per_task = seconds / n * 1000
        overhead = (seconds - baseline) / n * 1000
        print(f"{name:28} {seconds:9.3f} {per_task:12.2f} {overhead:17.2f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
