"""A driver for the early-mode kill tests: SIGKILLed just before its N-th checkpoint write.

    python early_driver.py ADDRESS STORAGE LOG KILL_AT

Runs the chain ``t1 -> t2 -> ... -> t5`` (each task appends its id to LOG) on the cluster at
ADDRESS with ``Client(STORAGE, executor=RayExecutor())`` in this process, in early mode. The
executor's fence, called just before each checkpoint write of this process, kills the process
at its KILL_AT-th such call (``t1`` is written by its own worker: its inputs were written).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import ray

from durableflow import Client, workflow
from durableflow.ray.executor import RayExecutor

LENGTH = 5


@ray.remote
def step(previous: int, name: str, log: str) -> int:
    with open(log, "a") as handle:
        handle.write(name + "\n")
    return previous + 1


def chain(log: str):  # type: ignore[no-untyped-def]
    node = step.options(**workflow.options(task_id="t1")).bind(0, "t1", log)
    for i in range(2, LENGTH + 1):
        node = step.options(**workflow.options(task_id=f"t{i}")).bind(node, f"t{i}", log)
    return node


def main() -> None:
    address, storage, log, kill_at = sys.argv[1:5]
    ray.init(address=address, logging_level="ERROR")
    executor = RayExecutor()
    writes = 0
    lock = threading.Lock()

    def fence(workflow_id: str) -> None:
        nonlocal writes
        if not threading.current_thread().name.startswith("durableflow-checkpoint"):
            return  # an early submission, not a write
        with lock:
            writes += 1
            if writes == int(kill_at):
                os.kill(os.getpid(), signal.SIGKILL)

    executor.fence = fence
    client = Client(storage, executor=executor)
    print(client.run(chain(log), workflow_id="chain"), flush=True)


if __name__ == "__main__":
    main()
