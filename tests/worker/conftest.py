"""Fixtures of the worker tests; this folder is put on sys.path so that ``wtasks`` and
``wtools`` import the same way here and in worker subprocesses (``--path``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from wtools import Workers


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    w = Workers(tmp_path)
    yield w
    w.stop_all()
