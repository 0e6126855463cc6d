"""Fixtures of the CLI tests: a storage holding a workflow in every status, and empty ones.

This folder is put on sys.path so that ``ctasks`` imports the same way here and in the CLI
subprocesses (which get it on PYTHONPATH).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from clitools import World


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = World(tmp_path_factory.mktemp("cli")).build()
    yield built
    built.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[World]:
    """An empty storage of its own, for commands that act on every workflow."""
    made = World(tmp_path)
    yield made
    made.close()
