"""Issue 12's structure target, kept: a ``workflow.run`` enters the Client once and the Client
hands the work down instead of orchestrating it (few returns into ``client/``).

The walk runs in a fresh interpreter (``python -m benchmarks.walk --whole``): what earlier tests
of this process configured (a tracer provider, log capture) would add steps of their own.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_workflow_id_walk_enters_the_client_once(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.walk", "--whole"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    numbers = dict(re.findall(r"^(.*): (\d+)$", done.stdout, re.MULTILINE))
    assert int(numbers["steps of the whole run"]) > 100  # it traced the real run
    assert int(numbers["entries into client/"]) == 1
    assert int(numbers["returns into client/ from below it"]) <= 4  # 12 before (b18f7f0)
