"""Ray Workflows' side of the peer comparison (Ray 2.47), its default durable storage.

Run in an interpreter where ``ray`` 2.47 is importable (``pip install 'ray==2.47.*'``), by
``python -m benchmarks --compare-peers --raywf-python PATH`` or by hand:
``PATH/python benchmarks/peers/raywf_peer.py --workdir /tmp/x``.

A local Ray is started for the run with its workflow storage in the workdir (a directory:
Ray Workflows' file storage). A chain is a DAG of N bound ``ray.remote`` tasks run by
``workflow.run``; a one-task workflow is one bound task.
"""

from __future__ import annotations

import logging
import sys
import warnings

import _protocol  # type: ignore[import-not-found]


def main(argv: list[str] | None = None) -> int:
    args = _protocol.parse(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    import ray
    from ray import workflow

    ray.init(
        num_cpus=2,
        storage=str(args.workdir / "ray-storage"),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )

    @ray.remote
    def inc(x: int) -> int:
        return x + 1

    @ray.remote
    def one(x: int) -> int:
        return x

    def run_chain(workflow_id: str, n: int) -> int:
        node = inc.bind(0)
        for _ in range(n - 1):
            node = inc.bind(node)
        return int(workflow.run(node, workflow_id=workflow_id))

    def run_one(workflow_id: str, i: int) -> int:
        return int(workflow.run(one.bind(i), workflow_id=workflow_id))

    try:
        _protocol.run_all(
            "Ray Workflows",
            ray.__version__,
            "local Ray, workflow storage in a directory (its default)",
            run_chain,
            run_one,
            args,
        )
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
