"""Soak mode: ``python -m tests.torture --rounds 1000 [--backends file,sqlite,s3]``.

Replay one round: ``python -m tests.torture --seed S --backend B --kind K``. Prints, per
backend, the rounds, the faults that fired by kind and the violations; exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the ``torture`` package

from torture import backends
from torture.harness import BACKENDS, KINDS, Harness
from torture.shapes import SHAPES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.torture", description=__doc__)
    parser.add_argument("--rounds", type=int, default=None, help="rounds in all (default 24)")
    parser.add_argument("--seed", type=int, default=None, help="first round's seed")
    parser.add_argument("--backend", "--backends", default=",".join(BACKENDS))
    parser.add_argument("--kind", "--kinds", default=",".join(KINDS))
    parser.add_argument("--shape", "--shapes", default="", help="only these shapes (a,b)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a hang")
    parser.add_argument("--findings", type=Path, default=None, help="append violations here")
    parser.add_argument("--keep", action="store_true", help="keep failing rounds' directories")
    parser.add_argument("--s3", choices=("seaweedfs", "moto"), default="seaweedfs")
    args = parser.parse_args(argv)
    chosen = [b for b in args.backend.split(",") if b]
    kinds = [k for k in args.kind.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS)) + sorted(set(chosen) - set(BACKENDS))
    forced = [s for s in args.shape.split(",") if s]
    unknown += sorted(set(forced) - set(SHAPES))
    if unknown:
        parser.error(f"unknown fault kinds or backends: {unknown}")
    replay = args.seed is not None and args.rounds is None
    rounds = 1 if replay else (args.rounds or 24)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000 * 1000
    server = None
    if "s3" in chosen:
        from durableflow.testing.s3server import start_moto, start_seaweedfs

        server = (
            start_seaweedfs(bucket="torture")
            if args.s3 == "seaweedfs"
            else start_moto(bucket="torture")
        )
        os.environ.update(server.environ())
    workdir = Path(tempfile.mkdtemp(prefix="durableflow-torture-"))
    harness = Harness(
        backends.factories(server, uuid.uuid4().hex[:8]),
        workdir,
        findings=args.findings,
        timeout=args.timeout,
        keep=args.keep,
    )
    try:
        plan = harness.schedule(rounds, seed, chosen, kinds)
        if replay:
            plan = [(seed, chosen[0], kinds[0])]
        for index, (s, backend, kind) in enumerate(plan):
            shape = forced[index % len(forced)] if forced else None
            result = harness.run_round(s, backend, kind, shape)
            mark = "VIOLATION" if result.violations else "ok"
            print(
                f"[{index + 1}/{len(plan)}] seed {s} {backend} {kind} {result.shape}: {mark} "
                f"({result.seconds:.1f} s, faults {result.faults})",
                flush=True,
            )
            for violation in result.violations:
                print(f"    - {violation}", flush=True)
            if replay and result.violations:
                print("\n".join(result.log))
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    print(harness.report())
    return 1 if any(r.violations for r in harness.results) else 0


if __name__ == "__main__":
    sys.exit(main())
