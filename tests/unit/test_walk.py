"""Issue 12's structure target, kept: a ``workflow.run`` enters the Client once and the Client
hands the work down instead of orchestrating it (few returns into ``client/``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.walk import walk


def test_the_workflow_id_walk_enters_the_client_once() -> None:
    steps, entries, returns = walk(whole=True)
    modules = [module for module, _ in steps]
    assert "runtime/engine" in modules and "workflow" in modules  # it traced the real run
    assert entries == 1
    assert returns <= 4  # was 12 before the restructuring (benchmarks/walk.py)
