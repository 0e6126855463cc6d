"""A program the crash tests run in a subprocess and kill with SIGKILL at chosen points.

Usage: python crash_prog.py run CONFIG_JSON | resume CONFIG_JSON

CONFIG: {"storage": url, "workflow_id": id, "log": path, "marker": path,
         "kill_inside": task id or null, "fail_once": task id that raises on its first run,
         "kill_at": {"op": "put"|"create"|"delete", "key": substring, "nth": n, "when": "before"|"after"} or null,
         "slow": seconds the task t2 sleeps (for races), "go": path to wait for before starting}
Prints one JSON line: {"result": value} or {"error": exception class name}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

from durableflow import Client, Storage, workflow
from durableflow.storage.urls import open_storage


class KillAt(Storage):
    """Delegates to a real storage and SIGKILLs this process at one chosen operation."""

    def __init__(self, inner: Storage, op: str, key: str, nth: int, when: str) -> None:
        self.inner, self.op, self.key, self.nth, self.when = inner, op, key, nth, when
        self.seen = 0

    def _maybe_kill(self, op: str, key: str, when: str) -> None:
        if op == self.op and self.key in key and when == self.when:
            if when == "before":
                self.seen += 1
            if self.seen == self.nth:
                os.kill(os.getpid(), signal.SIGKILL)

    def _call(self, op: str, key: str, fn: Any, *args: Any) -> Any:
        self._maybe_kill(op, key, "before")
        result = fn(key, *args)
        if self.when == "after" and op == self.op and self.key in key:
            self.seen += 1
            self._maybe_kill(op, key, "after")
        return result

    @property
    def url(self) -> str:
        return self.inner.url

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        self._call("put", key, self.inner.put, data)

    def create(self, key: str, data: bytes) -> bool:
        return bool(self._call("create", key, self.inner.create, data))

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        return bool(self._call("swap", key, self.inner.swap, expected, data))

    def delete(self, key: str) -> None:
        self._call("delete", key, self.inner.delete)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)


@workflow.task
def step(name: str, value: int, config: dict[str, Any]) -> int:
    with open(config["log"], "a") as handle:
        handle.write(name + "\n")
    if config.get("fail_once") == name and not os.path.exists(config["marker"]):
        open(config["marker"], "w").close()
        raise RuntimeError(f"{name} fails once")
    if config.get("kill_inside") == name and not os.path.exists(config["marker"]):
        open(config["marker"], "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    if name == "t2" and config.get("slow"):
        time.sleep(config["slow"])
    return value + 1


def build(config: dict[str, Any]) -> Any:
    t1 = step.options(task_id="t1").bind("t1", 0, config)
    t2 = step.options(task_id="t2").bind("t2", t1, config)
    return step.options(task_id="t3").bind("t3", t2, config)


def main() -> None:
    mode, config = sys.argv[1], json.loads(sys.argv[2])
    storage = open_storage(config["storage"])
    if config.get("kill_at"):
        k = config["kill_at"]
        storage = KillAt(storage, k["op"], k["key"], k.get("nth", 1), k.get("when", "before"))
    if config.get("go"):
        while not os.path.exists(config["go"]):
            time.sleep(0.001)
    client = Client(storage)
    try:
        if mode == "run":
            result = client.run(build(config), workflow_id=config["workflow_id"])
        else:
            result = client.resume(config["workflow_id"])
        print(json.dumps({"result": result}), flush=True)
    except Exception as err:
        print(json.dumps({"error": type(err).__name__, "message": str(err)}), flush=True)


if __name__ == "__main__":
    main()
