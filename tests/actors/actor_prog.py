"""A program the actor tests run in subprocesses (and kill with SIGKILL at chosen points).

Usage: python actor_prog.py CONFIG_JSON

CONFIG: {"storage": url, "actor_id": id, "op": "incr" | "send" | "effects",
         "n": number of calls, "go": a path to wait for before the first call (or null),
         "log": the Effects actor's file, "kill_once": a marker path (Effects: die inside the method once),
         "kill_at": {"op": storage operation, "key": key substring, "when": "before"|"after",
                     "nth": n} or null}
Prints one JSON line: {"results": [...]}.
"""

from __future__ import annotations

import json
import os
import sys
import time

from actor_classes import Counter, Effects

from durableflow import Client
from durableflow.storage.urls import open_storage
from durableflow.testing.faults import FaultyStorage, kill_this_process


def main() -> None:
    config = json.loads(sys.argv[1])
    storage = open_storage(config["storage"])
    kill = config.get("kill_at")
    if kill:
        where = "before" if kill.get("when", "before") == "before" else "after"
        storage = FaultyStorage(
            storage,
            kill["op"],
            key=kill["key"],
            nth=kill.get("nth", 1),
            **{where: kill_this_process},
        )
    go = config.get("go")
    if go:
        deadline = time.monotonic() + 60
        while not os.path.exists(go):
            assert time.monotonic() < deadline
            time.sleep(0.002)
    results: list[object] = []
    with Client(storage) as client:
        op = config["op"]
        if op == "effects":
            handle = Effects.using(client).get_or_create(config["actor_id"], config["log"])
            for _ in range(config.get("n", 1)):
                results.append(handle.incr.run(1, kill_once=config.get("kill_once")))
        else:
            handle = Counter.using(client).get_or_create(config["actor_id"], 0)
            for _ in range(config.get("n", 1)):
                if op == "send":
                    results.append(handle.incr.send(1))
                else:
                    results.append(handle.incr.run(1))
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
