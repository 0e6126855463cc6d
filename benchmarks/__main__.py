"""``python -m benchmarks``: run every scenario on every config, print a table, write JSON.

Each config runs in a fresh worker process (``benchmarks.worker``), one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.configs import CONFIGS, by_name, remove_later
from benchmarks.context import PROFILES
from benchmarks.harness import environment
from benchmarks.worker import SCENARIOS

REPO = Path(__file__).resolve().parent.parent


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="durableflow benchmarks: every scenario on every storage/executor config.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (under a minute): what CI can run"
    )
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), help="sizes and repeats (default: full)"
    )
    parser.add_argument(
        "--configs",
        help="comma-separated configs (default: all): " + ",".join(c.name for c in CONFIGS),
    )
    parser.add_argument(
        "--scenarios", help="comma-separated scenarios (default: all): " + ",".join(SCENARIOS)
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON results file (default: benchmarks/results/<profile>-<date>.json)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where storages live while measured (default: a new directory in $TMPDIR)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    peers = parser.add_argument_group(
        "peer comparison", "durableflow against DBOS and Ray Workflows (installs nothing)"
    )
    peers.add_argument(
        "--compare-peers",
        action="store_true",
        help="run the chain and one-task-workflow scenarios on durableflow and on the peers "
        "importable in the interpreters given, in this run, and print the ratios",
    )
    peers.add_argument("--dbos-python", help="an interpreter that can import dbos")
    peers.add_argument("--raywf-python", help="an interpreter that can import ray.workflow (2.47)")
    peers.add_argument(
        "--peer-rounds", type=int, default=3, help="rounds, every engine once each (default 3)"
    )
    args = parser.parse_args(argv)
    if args.peer_rounds < 1:
        parser.error(f"--peer-rounds must be at least 1, got {args.peer_rounds}")
    if (args.dbos_python or args.raywf_python) and not args.compare_peers:
        parser.error("--dbos-python and --raywf-python go with --compare-peers")
    return args


# Sizes of the peer comparison per profile: chain length, one-task workflows per batch, repeats.
PEER_SIZES = {
    "full": {"chain": 200, "workflows": 100, "threads": 8, "repeats": 3},
    "quick": {"chain": 50, "workflows": 30, "threads": 8, "repeats": 1},
    "smoke": {"chain": 10, "workflows": 5, "threads": 2, "repeats": 1},
}


def compare_peers(args: argparse.Namespace, profile: str) -> int:
    from benchmarks import compare_peers as peers

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="durableflow-peers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = environment(REPO, workdir)
    print(
        f"peer comparison: {env['cpu']} x{env['cpus']}, load {env['load_average']}, durable "
        f"write p50 {env['durable_write']['p50_ms']} ms ({env['filesystem']}), commit "
        f"{env['commit']}",
        file=sys.stderr,
        flush=True,
    )
    document = peers.compare(
        dbos_python=args.dbos_python,
        raywf_python=args.raywf_python,
        workdir=workdir,
        rounds=args.peer_rounds,
        sizes=PEER_SIZES[profile],
    )
    env["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    document["meta"] = env
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_path = args.out or REPO / "benchmarks" / "results" / f"peers-{profile}-{stamp}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(document, indent=1, default=str))
    print(peers.text(document))
    print(f"\nJSON: {out_path}")
    if args.markdown:
        args.markdown.write_text("```\n" + peers.text(document) + "\n```\n")
    if not args.keep and args.workdir is None:
        remove_later(workdir)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    profile = args.profile or ("quick" if args.quick else "full")
    if args.compare_peers:
        return compare_peers(args, profile)
    configs = by_name(args.configs.split(",") if args.configs else None)
    quick_skipped = []
    if profile != "full" and not args.configs:
        # A server or a cluster to start and seconds per task: named explicitly, or full runs.
        quick_skipped = [c for c in configs if c.slow]
        configs = [c for c in configs if not c.slow]
    scenarios = args.scenarios.split(",") if args.scenarios else list(SCENARIOS)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {list(SCENARIOS)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="durableflow-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_path = args.out or REPO / "benchmarks" / "results" / f"{profile}-{stamp}.json"
    started = time.perf_counter()
    env = environment(REPO, workdir)
    print(
        f"durableflow benchmarks, profile {profile}: {env['cpu']} x{env['cpus']}, "
        f"{env['memory_gib']} GiB, Python {env['python']}, commit {env['commit']}, "
        f"load {env['load_average']}, durable write p50 {env['durable_write']['p50_ms']} ms "
        f"({env['filesystem']})",
        file=sys.stderr,
        flush=True,
    )
    for config in quick_skipped:
        note = f"slow: not in --profile {profile} unless named with --configs"
        print(f"[{config.name}] skipped: {note}", file=sys.stderr, flush=True)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = [
        {"config": c.name, "reason": f"slow: not in --profile {profile} unless named"}
        for c in quick_skipped
    ]
    errors: list[dict[str, str]] = []
    extra: dict[str, Any] = {}
    for config in configs:
        reason = config.unavailable()
        if reason:
            print(f"[{config.name}] skipped: {reason}", file=sys.stderr, flush=True)
            skipped.append({"config": config.name, "reason": reason})
            continue
        result_file = workdir / f"result-{config.name}.json"
        command = [
            sys.executable,
            "-m",
            "benchmarks.worker",
            "--config",
            config.name,
            "--profile",
            profile,
            "--scenarios",
            ",".join(scenarios),
            "--workdir",
            str(workdir / config.name),
            "--out",
            str(result_file),
        ]
        env_vars = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        start = time.perf_counter()
        code = subprocess.run(command, cwd=REPO, env=env_vars).returncode
        if code != 0 or not result_file.exists():
            errors.append({"config": config.name, "error": f"worker exited with {code}"})
            print(f"[{config.name}] worker exited with {code}", file=sys.stderr, flush=True)
            continue
        data = json.loads(result_file.read_text())
        if data.get("skipped"):
            print(f"[{config.name}] skipped: {data['skipped']}", file=sys.stderr, flush=True)
            skipped.append({"config": config.name, "reason": data["skipped"]})
            continue
        rows.extend(data["results"])
        errors.extend({"config": config.name, **e} for e in data["errors"])
        if "ray" in data:
            extra["ray"] = data["ray"]
        print(
            f"[{config.name}] finished in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    env["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    env["duration_s"] = round(time.perf_counter() - started, 1)
    env.update(extra)
    growth = report.growth(rows)
    targets = report.check_targets(rows)
    order = [c.name for c in CONFIGS]
    document = {
        "meta": {
            **env,
            "profile": profile,
            "profile_sizes": PROFILES[profile].__dict__,
            "command": " ".join(["python -m benchmarks", *(argv or sys.argv[1:])]),
            "configs": [
                c.describe()
                | {
                    "max_size": c.max_size,
                    "max_store": c.max_store,
                    "max_workflows": c.max_workflows,
                    "repeats": c.repeats,
                }
                for c in configs
            ],
            "scenarios": scenarios,
        },
        "results": rows,
        "growth": growth,
        "targets": targets,
        "skipped": skipped,
        "errors": errors,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(document, indent=1, default=str))
    print()
    print(report.console_table(rows, order))
    print("\nTargets:")
    print(report.targets_text(targets))
    print("\nGrowth (largest size / smallest size, per unit; ≤ 1.5):")
    print(report.growth_text(growth))
    for item in skipped:
        print(f"skipped {item['config']}: {item['reason']}")
    for item in errors:
        print(f"ERROR in {item['config']} {item.get('scenario', '')}: see the JSON")
    print(f"\nJSON: {out_path}  ({env['duration_s']:.0f} s)")
    if args.markdown:
        args.markdown.write_text(markdown_document(document, order))
        print(f"Markdown: {args.markdown}")
    if not args.keep and args.workdir is None:
        remove_later(workdir)
    return 1 if errors else 0


def markdown_document(document: dict[str, Any], order: list[str]) -> str:
    meta = document["meta"]
    lines = [
        f"Measured {meta['date']} at commit `{meta['commit']}` with `{meta['command']}` "
        f"({meta['duration_s']:.0f} s).",
        "",
        f"Machine: {meta['cpu']}, {meta['cpus']} cores, {meta['memory_gib']} GiB, "
        f"{meta['platform']}, Python {meta['python']}; storage on {meta['filesystem']}, one "
        f"durable small-file write p50 {meta['durable_write']['p50_ms']} ms / p95 "
        f"{meta['durable_write']['p95_ms']} ms. Load average {meta['load_average']} at the "
        f"start, {meta['load_average_end']} at the end (a shared machine).",
        "",
        "### Targets",
        "",
        report.targets_text(document["targets"], markdown=True),
        "",
        "### Growth (cost at the largest size / at the smallest)",
        "",
        report.growth_text(document["growth"], markdown=True),
        "",
        "### All figures",
        "",
        report.markdown_table(document["results"], order),
    ]
    if document["skipped"]:
        lines += [
            "",
            "Skipped: " + "; ".join(f"{s['config']} ({s['reason']})" for s in document["skipped"]),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
