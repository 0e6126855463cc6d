"""DBOS Transact's side of the peer comparison: SQLite system database, its defaults.

Run in an interpreter where ``dbos`` is importable (``pip install dbos``), by
``python -m benchmarks --compare-peers --dbos-python PATH`` or by hand:
``PATH/python benchmarks/peers/dbos_peer.py --workdir /tmp/x``.

A chained task is a ``@DBOS.step`` called by a ``@DBOS.workflow`` with the previous step's
output; a one-task workflow is a workflow that calls one step. Each workflow is run with its
own id (``SetWorkflowID``) and waited for, as durableflow's ``Client.run`` is.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import version

import _protocol  # type: ignore[import-not-found]
from dbos import DBOS, DBOSConfig, SetWorkflowID  # type: ignore[import-not-found]


def main(argv: list[str] | None = None) -> int:
    args = _protocol.parse(argv)
    config: DBOSConfig = {
        "name": "durableflow-peer",
        "system_database_url": f"sqlite:///{args.workdir / 'dbos.sqlite'}",
        "run_admin_server": False,
    }
    DBOS(config=config)

    @DBOS.step()
    def inc(x: int) -> int:
        return x + 1

    @DBOS.step()
    def one(x: int) -> int:
        return x

    @DBOS.workflow()
    def chain(n: int) -> int:
        x = 0
        for _ in range(n):
            x = inc(x)
        return x

    @DBOS.workflow()
    def one_task(x: int) -> int:
        return one(x)

    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)

    def run_chain(workflow_id: str, n: int) -> int:
        with SetWorkflowID(workflow_id):
            return int(chain(n))

    def run_one(workflow_id: str, i: int) -> int:
        with SetWorkflowID(workflow_id):
            return int(one_task(i))

    try:
        _protocol.run_all(
            "DBOS Transact",
            version("dbos"),
            "SQLite system database, DBOS's default settings",
            run_chain,
            run_one,
            args,
        )
    finally:
        DBOS.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
