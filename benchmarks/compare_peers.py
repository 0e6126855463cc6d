"""``python -m benchmarks --compare-peers``: durableflow against DBOS and Ray Workflows, one run.

Installs nothing. The same two scenarios (``benchmarks/peers/_protocol.py``: a chain of
trivial tasks, and one-task workflows one after another and from 8 threads) run in each
engine's default durable configuration, each engine in its own interpreter and process, one
after another, in ``--peer-rounds`` rounds (each round runs every engine once, in turn; the
figures are the medians over the rounds):

- durableflow in this interpreter (``benchmarks/peers/durableflow_peer.py``), default storage;
- DBOS Transact on SQLite in ``--dbos-python`` (``benchmarks/peers/dbos_peer.py``);
- Ray Workflows 2.47 in ``--raywf-python`` (``benchmarks/peers/raywf_peer.py``).

A peer whose interpreter cannot import it is skipped with the reason. The ratios printed are
the ones issue 17 sets goals for: per chained task durableflow / peer (goal ≤ 1/3 of DBOS,
≤ 1/10 of Ray Workflows), one-task workflows per second durableflow / peer (goal ≥ 3x DBOS
sequential, ≥ 5x DBOS from 8 threads).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PEERS_DIR = Path(__file__).resolve().parent / "peers"

# name, script, module the interpreter must import, goals: figure -> (comparison, bound)
ENGINES = {
    "durableflow": ("durableflow_peer.py", "durableflow", {}),
    "dbos": (
        "dbos_peer.py",
        "dbos",
        {"chain": 1 / 3, "tiny_sequential": 3.0, "tiny_threads": 5.0},
    ),
    "raywf": ("raywf_peer.py", "ray.workflow", {"chain": 1 / 10}),
}
FIGURES = (
    ("chain", "chain_s_per_task", "per chained task", "ms", 1e3, False),
    ("tiny_sequential", "tiny_sequential_per_s", "one-task workflows/s, sequential", "/s", 1, True),
    (
        "tiny_threads",
        "tiny_threads_per_s",
        "one-task workflows/s, {threads} threads",
        "/s",
        1,
        True,
    ),
)


def _check_interpreter(python: str, module: str) -> str | None:
    """Why ``python`` cannot run the peer that needs ``module``, or None."""
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return f"{python} is not an executable file"
    probe = subprocess.run(
        [python, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"{python} cannot import {module}: {last}"
    return None


def _run_peer(
    name: str, python: str, workdir: Path, sizes: dict[str, int], log: Path
) -> dict[str, Any]:
    script = PEERS_DIR / ENGINES[name][0]
    command = [python, str(script), "--workdir", str(workdir)]
    for option, value in sizes.items():
        command += [f"--{option}", str(value)]
    env = dict(os.environ)
    if name == "durableflow":
        src = str(PEERS_DIR.parent.parent / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    else:
        env.pop("PYTHONPATH", None)  # the peer's own interpreter, nothing of ours
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=handle, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{name} peer exited with {done.returncode}; its output is in {log}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def _fmt(value: float, unit: str, scale: float) -> str:
    shown = value * scale
    return f"{shown:.2f} {unit}" if shown < 100 else f"{shown:.0f} {unit}"


def compare(
    *,
    dbos_python: str | None,
    raywf_python: str | None,
    workdir: Path,
    rounds: int,
    sizes: dict[str, int],
) -> dict[str, Any]:
    """Run the engines, print the figures and ratios; the document (also written as JSON)."""
    interpreters = {"durableflow": sys.executable}
    skipped: dict[str, str] = {}
    for name, python in (("dbos", dbos_python), ("raywf", raywf_python)):
        if python is None:
            skipped[name] = f"not asked (--{name}-python PATH)"
            continue
        reason = _check_interpreter(python, ENGINES[name][1])
        if reason:
            skipped[name] = reason
            print(f"[{name}] skipped: {reason}", file=sys.stderr, flush=True)
        else:
            interpreters[name] = python
    log = workdir / "peers.log"
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in interpreters}
    for round_no in range(rounds):
        for name, python in interpreters.items():
            start = time.perf_counter()
            result = _run_peer(name, python, workdir / f"{name}-{round_no}", sizes, log)
            runs[name].append(result)
            print(
                f"[{name}] round {round_no + 1}/{rounds}: "
                + ", ".join(
                    f"{key} {_fmt(result[field], unit, scale)}"
                    for key, field, _, unit, scale, _ in FIGURES
                )
                + f" ({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    medians = {
        name: {field: statistics.median(r[field] for r in results) for _, field, *_ in FIGURES}
        for name, results in runs.items()
    }
    ratios = []
    ours = medians["durableflow"]
    for peer in interpreters:
        if peer == "durableflow":
            continue
        goals = ENGINES[peer][2]
        for key, field, label, _, _, higher_better in FIGURES:
            # Per chained task: our time / theirs (lower is better); rates: ours / theirs.
            ratio = ours[field] / medians[peer][field]
            goal = goals.get(key)
            met = None if goal is None else (ratio >= goal if higher_better else ratio <= goal)
            ratios.append(
                {
                    "peer": peer,
                    "figure": key,
                    "label": label.format(threads=sizes["threads"]),
                    "ratio": ratio,
                    "goal": goal,
                    "higher_is_better": higher_better,
                    "met": met,
                }
            )
    return {
        "rounds": rounds,
        "sizes": sizes,
        "versions": {name: results[0]["version"] for name, results in runs.items()},
        "configurations": {name: results[0]["configuration"] for name, results in runs.items()},
        "runs": runs,
        "medians": medians,
        "ratios": ratios,
        "skipped": skipped,
    }


def text(document: dict[str, Any]) -> str:
    """The figures and ratios as the console table."""
    sizes = document["sizes"]
    names = list(document["medians"])
    lines = [
        f"Peer comparison, median of {document['rounds']} round(s); chain of {sizes['chain']} "
        f"tasks, {sizes['workflows']} one-task workflows per batch:",
        "",
    ]
    for name in names:
        lines.append(
            f"  {name:<12} {document['versions'][name]:<8} {document['configurations'][name]}"
        )
    lines.append("")
    header = f"  {'figure':<36}" + "".join(f"{n:>14}" for n in names)
    lines.append(header)
    for _key, field, label, unit, scale, _ in FIGURES:
        row = f"  {label.format(threads=sizes['threads']):<36}"
        row += "".join(f"{_fmt(document['medians'][n][field], unit, scale):>14}" for n in names)
        lines.append(row)
    if document["ratios"]:
        lines += ["", "  Ratios (durableflow / peer):"]
        for r in document["ratios"]:
            if r["goal"] is None:
                verdict = ""
            else:
                sign = "≥" if r["higher_is_better"] else "≤"
                verdict = f"   goal {sign} {r['goal']:.2f}: {'met' if r['met'] else 'MISSED'}"
            what = "time" if not r["higher_is_better"] else "rate"
            lines.append(f"  {r['peer']:<7} {r['label']:<36} {what} x{r['ratio']:.2f}{verdict}")
    for name, reason in document["skipped"].items():
        lines.append(f"  skipped {name}: {reason}")
    return "\n".join(lines)
