"""Runs the scenarios of one config in this process and writes their rows as JSON.

``python -m benchmarks`` starts one of these per config, so that every config starts from a
fresh interpreter (peak memory, imports, thread pools, a Ray instance) and a crash in one
does not stop the others.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks import runs, stores
from benchmarks.configs import by_name
from benchmarks.context import PROFILES, Context, Result, eprint
from benchmarks.harness import FSYNCS, quiet_logging

SCENARIOS: dict[str, Callable[[Context], list[Result]]] = {
    "chain": runs.chain,
    "fanout": runs.fanout,
    "tiny": runs.tiny,
    "resume": stores.resume,
    "payload": runs.payload,
    "management": stores.management,
}


def run_config(
    config_name: str, profile_name: str, scenarios: list[str], workdir: Path
) -> dict[str, object]:
    config = by_name([config_name])[0]
    profile = PROFILES[profile_name]
    out: dict[str, object] = {"config": config.describe(), "results": [], "errors": []}
    reason = config.unavailable()
    if reason:
        out["skipped"] = reason
        return out
    workdir.mkdir(parents=True, exist_ok=True)
    FSYNCS.install()
    ray_started = False
    try:
        backend = config.make_backend(workdir)
    except Exception as err:  # a server that does not start: skip the config, say why
        out["skipped"] = f"backend did not start: {type(err).__name__}: {err}"
        return out
    if config.executor == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            ray_started = True
        out["ray"] = ray.__version__
    ctx = Context(config, backend, profile, workdir, eprint)
    results: list[dict[str, object]] = []
    errors: list[dict[str, str]] = []
    try:
        with quiet_logging():
            for name in scenarios:
                start = time.perf_counter()
                try:
                    rows = SCENARIOS[name](ctx)
                except Exception:
                    errors.append({"scenario": name, "error": traceback.format_exc()})
                    eprint(f"[{config.name}] {name} FAILED:\n{traceback.format_exc()}")
                    rows = []
                finally:
                    ctx.close()
                results.extend(row.to_json() for row in rows)
                eprint(f"[{config.name}] {name} done in {time.perf_counter() - start:.1f} s")
    finally:
        backend.close()
        if ray_started:
            import ray

            ray.shutdown()
        FSYNCS.uninstall()
    out["results"] = results
    out["errors"] = errors
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--profile", default="full", choices=sorted(PROFILES))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {list(SCENARIOS)}")
    out = run_config(args.config, args.profile, scenarios, args.workdir)
    args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
