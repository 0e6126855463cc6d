"""Runs workflows in this process until it is killed: ``python run_prog.py CONFIG_JSON``.

CONFIG: {"storage": url, "ids": [workflow ids], "go": path, "started_dir": path, "log": path}.
Each workflow is t1 (logs at once) then t2 (touches started_dir/<id>, waits for ``go``, logs).
"""

from __future__ import annotations

import json
import sys

import wtasks

from durableflow import Client
from durableflow.executors.local import ThreadExecutor

cfg = json.loads(sys.argv[1])
client = Client(cfg["storage"], executor=ThreadExecutor(max_workers=64))
futures = []
for wid in cfg["ids"]:
    first = wtasks.record.options(task_id="t1").bind(cfg["log"], f"{wid} t1", 1)
    started = f"{cfg['started_dir']}/{wid}"
    dag = wtasks.wait_for.options(task_id="t2").bind(
        cfg["go"], started, cfg["log"], f"{wid} t2", first
    )
    futures.append(client.run_async(dag, workflow_id=wid))
for future in futures:
    print(future.result())
