"""A driver program for the lifetime tests, run as its own process against a separate cluster.

    python lifetime_driver.py ADDRESS STORAGE LOG GATE WORKFLOWS [--exit]

Starts WORKFLOWS workflows ``w0``, ``w1``... on the cluster and prints STARTED, then sleeps (to
be killed) or, with ``--exit``, returns at once. Each workflow is a chain: ``seed`` returns a
value holding an ObjectRef, ``step`` 1 and 2 run at once, ``step`` 3 waits for the file GATE,
then ``finish`` reads the seed's ObjectRef. Every task appends ``start``/``done`` lines to LOG.
"""

from __future__ import annotations

import os
import sys
import time

import ray

from durableflow import workflow


def note(log: str, line: str) -> None:
    with open(log, "a") as handle:
        handle.write(line + "\n")


@ray.remote(num_cpus=0.25)
def seed(name: str, log: str) -> list:  # type: ignore[type-arg]
    note(log, f"start {name} seed")
    value = [ray.put(f"{name}-payload")]
    note(log, f"done {name} seed")
    return value


@ray.remote(num_cpus=0.25)
def step(previous: object, name: str, index: int, log: str, gate: str) -> int:
    note(log, f"start {name} {index}")
    if index >= 3:
        deadline = time.monotonic() + 120
        while not os.path.exists(gate):
            assert time.monotonic() < deadline, "gate never opened"
            time.sleep(0.01)
    note(log, f"done {name} {index}")
    return index


@ray.remote(num_cpus=0.25)
def finish(seeded: list, last: int, name: str, log: str) -> str:  # type: ignore[type-arg]
    note(log, f"start {name} finish")
    payload = ray.get(seeded[0])
    note(log, f"done {name} finish")
    return f"{payload}:{last}"


def build(name: str, log: str, gate: str):  # type: ignore[no-untyped-def]
    seeded = seed.bind(name, log)
    node = seeded
    for index in (1, 2, 3):
        node = step.bind(node, name, index, log, gate)
    return finish.bind(seeded, node, name, log)


def main() -> None:
    address, storage, log, gate, count = sys.argv[1:6]
    ray.init(address=address, logging_level="ERROR")
    workflow.init(storage, executor="ray")
    for i in range(int(count)):
        workflow.run_async(build(f"w{i}", log, gate), workflow_id=f"w{i}")
    print("STARTED", flush=True)
    if "--exit" in sys.argv:
        return
    time.sleep(600)


if __name__ == "__main__":
    main()
