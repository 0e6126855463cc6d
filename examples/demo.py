"""durableflow demo: a pipeline fails at a step, shows its status, is resumed, prints the result.

Runs on the embedded default: no Ray, no server; state goes to the default storage (a SQLite
file in your data directory, printed below), or to $DURABLEFLOW_STORAGE. The resume in step 2
does not redo extract and transform: their lines print once, load's twice. Each run of the
demo starts a new workflow id (the time and the process id), so it tells the whole story
again; `durableflow list` shows the earlier ones.
"""

from __future__ import annotations

import os
import time

from durableflow import WorkflowExecutionError, workflow


@workflow.task
def extract(day: str) -> list[int]:
    print(f"  extract({day}) runs")
    return [3, 1, 4, 1, 5, 9, 2, 6]


@workflow.task
def transform(rows: list[int]) -> list[int]:
    print("  transform runs")
    return sorted(r * 10 for r in rows)


@workflow.task
def load(rows: list[int]) -> str:
    print("  load runs")
    if os.environ.get("DEMO_WAREHOUSE") != "up":
        raise ConnectionError("warehouse unreachable")
    return f"loaded {len(rows)} rows, total {sum(rows)}"


def main() -> None:
    client = workflow.init()
    print(f"storage: {client.storage.url}")
    workflow_id = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    dag = load.bind(transform.bind(extract.bind("2026-11-27")))

    print(f"\n1. run {workflow_id!r} while the warehouse is down")
    try:
        workflow.run(dag, workflow_id=workflow_id)
    except WorkflowExecutionError as err:
        print(f"  failed: {err}")
    print(f"  status: {workflow.get_status(workflow_id).value}")
    error = workflow.get_metadata(workflow_id)["error"]
    print(f"  error recorded: {error['type']}: {error['message']}")

    print("\n2. the warehouse is back: resume (extract and transform are not run again)")
    os.environ["DEMO_WAREHOUSE"] = "up"
    result = workflow.resume(workflow_id)
    print(f"  result: {result}")
    print(f"  status: {workflow.get_status(workflow_id).value}")

    print("\n3. every workflow in this storage:")
    for wid, status in workflow.list_all()[-5:]:
        print(f"  {wid:30} {status.value}")


if __name__ == "__main__":
    main()
