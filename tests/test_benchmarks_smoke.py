"""The benchmark harness runs end to end (tiny sizes, memory storage) and writes complete JSON.

It asserts the structure of the results, never a time: benchmarks do not fail CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = {"chain", "fanout", "tiny", "management", "resume", "payload"}
ROW_FIELDS = {
    "scenario",
    "variant",
    "config",
    "storage",
    "durability",
    "executor",
    "size",
    "median_s",
    "p95_s",
    "per_unit_s",
    "peak_rss_mb",
    "bytes_written",
    "baselines",
    "baseline",
    "ratio",
}


def test_quick_benchmarks_on_memory_write_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--profile",
            "smoke",
            "--configs",
            "memory",
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
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    document = json.loads(out.read_text())

    assert document["errors"] == []
    meta = document["meta"]
    for key in ("date", "commit", "python", "cpu", "cpus", "load_average", "durable_write"):
        assert key in meta
    rows = document["results"]
    assert {row["scenario"] for row in rows} == SCENARIOS
    for row in rows:
        assert row.keys() >= ROW_FIELDS, ROW_FIELDS - row.keys()
        assert row["config"] == "memory"
        assert row["storage"] == "memory"
        assert row["executor"] == "thread"
        assert row["median_s"] > 0
        assert row["baselines"], f"{row['scenario']} has no baseline"
        assert row["baseline"] in row["baselines"]
    # Every scenario runs at two sizes at least, so that growth is visible.
    for scenario in SCENARIOS:
        sizes = {row["size"] for row in rows if row["scenario"] == scenario}
        assert len(sizes) >= 2, scenario
    assert any(row["baselines"].get("python") for row in rows if row["scenario"] == "chain")
    grown = {g["scenario"] for g in document["growth"]}
    assert grown == SCENARIOS
    assert {t["target"] for t in document["targets"]}
    assert "Targets:" in proc.stdout
