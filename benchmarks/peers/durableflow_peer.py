"""durableflow's side of the peer comparison, on its default storage (SQLite, group fsync).

Run by ``python -m benchmarks --compare-peers`` in the current interpreter; by hand:
``python benchmarks/peers/durableflow_peer.py --workdir /tmp/x``.
"""

from __future__ import annotations

import logging
import os
import sys

import _protocol  # type: ignore[import-not-found]

from durableflow import Client, __version__, task


def inc(x: int) -> int:
    return x + 1


def one(x: int) -> int:
    return x


inc_task = task(inc)
one_task = task(one)


def main(argv: list[str] | None = None) -> int:
    args = _protocol.parse(argv)
    logging.getLogger("durableflow").setLevel(logging.WARNING)
    # The default storage (no URL, no $DURABLEFLOW_STORAGE): under the data directory, here
    # the workdir's, so that runs start empty and leave nothing in the user's home.
    os.environ.pop("DURABLEFLOW_STORAGE", None)
    os.environ.pop("RAY_WORKFLOW_STORAGE", None)
    os.environ["XDG_DATA_HOME"] = str(args.workdir / "data")
    client = Client()

    def run_chain(workflow_id: str, n: int) -> int:
        node = inc_task.bind(0)
        for _ in range(n - 1):
            node = inc_task.bind(node)
        return int(client.run(node, workflow_id=workflow_id))

    def run_one(workflow_id: str, i: int) -> int:
        return int(client.run(one_task.bind(i), workflow_id=workflow_id))

    try:
        _protocol.run_all(
            "durableflow",
            __version__,
            f"default storage ({client.storage.url.split(':')[0]}), synced: survives a power cut",
            run_chain,
            run_one,
            args,
        )
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
