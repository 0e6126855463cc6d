"""Per-task overhead of durableflow on Ray, next to a plain ``ray.remote`` chain.

    python benchmarks/ray_overhead.py [--length 200] [--fanout 1000] [--repeats 5]
                                      [--storage DIR] [--checkpoint-on-worker]

One run, one local Ray (``address="local"``, 2 CPUs), two shapes: a chain of ``length`` tasks
(``inc(inc(...inc(0)))``) and a fan-out of ``fanout`` tasks gathered by one more
(``total(inc(0), inc(1), ...)``; 0 skips it), each measured as

- ``ray.remote``: plain Ray, ``inc.remote(ref)`` chained, one ``ray.get`` at the end;
- ``durableflow (coordinator)``: ``workflow.run`` of the Ray DAG, driven by the in-cluster
  coordinator, every task checkpointed to file storage;
- ``durableflow (driver)``: ``Client(executor="ray")``, the engine in this process.

It prints the median time of each, per task, and its ratio to plain Ray. Both durableflow rows
run the Ray executor's default early mode (``docs/ray-quickstart.md``, "Durability on Ray");
``--checkpoint-on-worker`` runs the driver row in the older mode instead (every task writes its
checkpoint on its worker before its consumers are submitted; the coordinator keeps its default).
It measures and prints; it never fails on a
time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import ray

from durableflow import Client, workflow
from durableflow.ray.executor import RayExecutor


@ray.remote
def inc(x: int) -> int:
    return x + 1


@ray.remote
def total(*values: int) -> int:
    return sum(values)


def chain(length: int):  # type: ignore[no-untyped-def]
    node = inc.bind(0)
    for _ in range(length - 1):
        node = inc.bind(node)
    return node


def fan_out(width: int):  # type: ignore[no-untyped-def]
    return total.bind(*[inc.bind(i) for i in range(width)])


def median_seconds(run: Callable[[int], None], repeats: int) -> float:
    run(-1)  # warm: workers started, functions exported, coordinator up
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(
    shape: str, n: int, repeats: int, workflow_client: Client, driver_client: Client
) -> dict[str, float]:
    """Median seconds of plain Ray, the coordinator and the driver for one shape."""
    if shape == "chain":
        expected, build = n, chain

        def plain(_: int) -> None:
            ref = inc.remote(0)
            for _ in range(n - 1):
                ref = inc.remote(ref)
            assert ray.get(ref) == expected
    else:
        expected, build = n * (n + 1) // 2, fan_out

        def plain(_: int) -> None:
            assert ray.get(total.remote(*[inc.remote(i) for i in range(n)])) == expected

    def coordinated(i: int) -> None:
        assert workflow.run(build(n), workflow_id=f"{shape}-coordinated-{i}") == expected

    def driven(i: int) -> None:
        assert driver_client.run(build(n), workflow_id=f"{shape}-driven-{i}") == expected

    return {
        "ray.remote": median_seconds(plain, repeats),
        "durableflow (coordinator)": median_seconds(coordinated, repeats),
        "durableflow (driver)": median_seconds(driven, repeats),
    }


def report(title: str, tasks: int, results: dict[str, float]) -> None:
    baseline = results["ray.remote"]
    print(title)
    print(f"{'':28} {'total s':>9} {'per task ms':>12} {'overhead/task ms':>17} {'ratio':>6}")
    for name, seconds in results.items():
        per_task = seconds / tasks * 1000
        overhead = (seconds - baseline) / tasks * 1000
        print(
            f"{name:28} {seconds:9.3f} {per_task:12.2f} {overhead:17.2f} {seconds / baseline:6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--fanout", type=int, default=1000, help="0: no fan-out")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--storage", default=None, help="a directory (default: a temp dir)")
    parser.add_argument(
        "--checkpoint-on-worker", action="store_true", help="the driver row in the older mode"
    )
    args = parser.parse_args()
    storage = args.storage or tempfile.mkdtemp(prefix="df-ray-overhead-")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    early = not args.checkpoint_on_worker
    workflow.init(storage, executor="ray")
    driver_client = Client(storage, executor=RayExecutor(early=early))
    mode = "early" if early else "checkpoint on worker (driver row)"
    print(f"Ray {ray.__version__}, storage {storage}, median of {args.repeats} runs, mode {mode}")
    shapes = [("chain", args.length)] + ([("fanout", args.fanout)] if args.fanout else [])
    for shape, n in shapes:
        results = measure(shape, n, args.repeats, workflow, driver_client)  # type: ignore[arg-type]
        tasks = n if shape == "chain" else n + 1
        title = f"chain of {n} tasks" if shape == "chain" else f"fan-out of {n} tasks + 1 gather"
        report(title, tasks, results)
    driver_client.close()
    workflow.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
