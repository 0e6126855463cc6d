"""One worker scan at a fixed clock, killed (SIGKILL) at a chosen storage operation.

Usage: ``python worker_prog.py CONFIG_JSON`` with CONFIG
``{"storage": url, "now": unix time, "kill": {"op": ..., "key": substring, "nth": n}}``.
"""

from __future__ import annotations

import json
import sys

from durableflow import Client
from durableflow.storage.urls import open_storage
from durableflow.testing import FaultyStorage, kill_this_process
from durableflow.worker import Worker

cfg = json.loads(sys.argv[1])
kill = cfg["kill"]
storage = FaultyStorage(
    open_storage(cfg["storage"]),
    kill["op"],
    key=kill["key"],
    nth=kill.get("nth", 1),
    after=kill_this_process,
)
client = Client(storage)
worker = Worker(client, clock=lambda: float(cfg["now"]))
worker.run_once()
worker.wait_idle(30)
print("the kill point was never reached")
