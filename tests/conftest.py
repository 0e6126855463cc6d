"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from durableflow import Client, workflow


@pytest.fixture(autouse=True)
def _no_ambient_storage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may touch the user's default storage or inherit one from the environment."""
    for name in (
        "DURABLEFLOW_STORAGE",
        "RAY_WORKFLOW_STORAGE",
        "DURABLEFLOW_SIGNING_KEY",
        "DURABLEFLOW_EXECUTOR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def client(storage_dir: Path) -> Iterator[Client]:
    c = Client(str(storage_dir), cancel_poll=0.05)
    yield c
    c.close(wait=False)


@pytest.fixture
def wf(storage_dir: Path) -> Iterator[object]:
    """The workflow facade initialised on a fresh directory."""
    workflow.init(str(storage_dir))
    yield workflow
    workflow.shutdown(wait=False)
