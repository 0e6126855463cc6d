"""``python -m benchmarks --compare-peers`` runs end to end with the peers it can find.

Structure only, never a time. DBOS is not installed in the dev environment: giving this
interpreter as ``--dbos-python`` must skip DBOS with the reason, not fail the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_compare_peers_runs_durableflow_and_names_the_missing_peer(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    missing = tmp_path / "no-such-python"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--compare-peers",
            "--profile",
            "smoke",
            "--peer-rounds",
            "1",
            "--dbos-python",
            sys.executable,
            "--raywf-python",
            str(missing),
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(out.read_text())
    assert list(document["medians"]) == ["durableflow"]
    figures = document["medians"]["durableflow"]
    assert set(figures) == {"chain_s_per_task", "tiny_sequential_per_s", "tiny_threads_per_s"}
    assert all(value > 0 for value in figures.values())
    run = document["runs"]["durableflow"][0]
    assert run["chain_length"] == 10 and len(run["chain_samples"]) == 1
    assert "cannot import dbos" in document["skipped"]["dbos"]
    assert str(missing) in document["skipped"]["raywf"]
    assert document["ratios"] == []
    assert "per chained task" in proc.stdout


def test_compare_peers_options_need_the_mode() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--dbos-python", sys.executable],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--compare-peers" in proc.stderr
