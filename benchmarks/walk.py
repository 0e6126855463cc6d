"""The ``workflow_id`` walk (issue 12): from ``workflow.run`` down to the first storage write.

Traces the calling thread's calls into durableflow while ``workflow.run`` starts a one-task
workflow on file storage, up to the first write of a storage backend (the run record, specs or
index entry reaching the disk), and prints: the steps (durableflow function calls), the files
they cross (consecutive calls of one function count once), how many times the walk enters
``client/`` (a call from outside the Client's package into it) and how many times it goes
back up into it (a call the Client made returning). ``--whole``: the whole run in the calling
thread, to its output; ``--show`` prints the walk itself.

Measured (issue 12): before the restructuring (b18f7f0) the whole run went back up into the
Client 12 times (331 steps, 20 files); now once in, 4 returns (385 steps, 43 files: the
runners, per-task environments, telemetry and log capture are on the path).

    python -m benchmarks.walk [--whole] [--show]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from types import FrameType
from typing import Any

from durableflow import workflow

_BACKEND_WRITES = {"put", "put_many", "create", "batch_put", "_write", "compare_and_swap"}
_BACKENDS = ("storage/filesystem", "storage/_fs", "storage/sqlite", "storage/_sqlite")


@workflow.task
def one() -> int:
    return 1


class _Stop(Exception):
    pass


def _module(frame: FrameType | None) -> str:
    path = frame.f_code.co_filename.replace("\\", "/") if frame is not None else ""
    if "/src/durableflow/" not in path:
        return ""
    return path.split("/src/durableflow/", 1)[1].removesuffix(".py")


def walk(whole: bool = False) -> tuple[list[tuple[str, str]], int, int]:
    """The durableflow calls of ``workflow.run`` up to the first backend write; how many of
    them are calls into ``client/`` from outside it (the walk entering the Client), and how
    many times a call made by ``client/`` returns to it (the walk going back up into it)."""
    steps: list[tuple[str, str]] = []
    entries = 0
    returns = 0
    done = False

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal done, entries, returns
        if done or event not in ("call", "return"):
            return
        module = _module(frame)
        if not module:
            return
        if event == "return":
            back = _module(frame.f_back)
            if back.startswith("client/") and not module.startswith("client/"):
                returns += 1  # control goes back up into the Client
            return
        if module.startswith("client/") and not _module(frame.f_back).startswith("client/"):
            entries += 1
        step = (module, frame.f_code.co_name)
        if not steps or steps[-1] != step:  # a loop's calls of one helper count once
            steps.append(step)
        if not whole and module.startswith(_BACKENDS) and frame.f_code.co_name in _BACKEND_WRITES:
            done = True

    with tempfile.TemporaryDirectory() as root:
        workflow.init(root)
        sys.setprofile(tracer)
        try:
            workflow.run(one.bind(), workflow_id="walked")
        finally:
            sys.setprofile(None)
            workflow.shutdown()
    return steps, entries, returns


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print every step")
    parser.add_argument("--whole", action="store_true", help="trace the whole run")
    args = parser.parse_args(argv)
    steps, entries, returns = walk(args.whole)
    files = {module for module, _ in steps}
    if args.show:
        for n, (module, name) in enumerate(steps, 1):
            print(f"{n:4d} {module}.{name}")
    print(
        f"steps {'of the whole run' if args.whole else 'to the first storage write'}: {len(steps)}"
    )
    print(f"files crossed: {len(files)}")
    print(f"entries into client/: {entries}")
    print(f"returns into client/ from below it: {returns}")


if __name__ == "__main__":
    main()
