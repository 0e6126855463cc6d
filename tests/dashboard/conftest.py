"""Fixtures of the dashboard tests (helpers in ``dashseed``); this folder goes on sys.path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent))  # last: never shadow another folder's conftest

from dashseed import Seeded


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    built = Seeded(tmp_path).every_status()
    yield built
    built.close()


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Seeded]:
    built = Seeded(tmp_path)
    yield built
    built.close()
