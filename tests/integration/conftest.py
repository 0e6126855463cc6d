"""The integration suite runs on every durable backend: files, SQLite, and S3 (SeaweedFS).

``storage_url`` is parametrized; ``client`` and ``wf`` (the facade) are built on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from durableflow import Client, workflow

BACKENDS = ("file", "sqlite", "s3")


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty storage of each backend, reachable from child processes by its URL."""
    if request.param == "file":
        return str(tmp_path / "store")
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'workflows.db'}"
    request.getfixturevalue("s3_credentials")
    server = request.getfixturevalue("seaweedfs_server")
    return str(server.url(f"it/{uuid.uuid4().hex}"))


@pytest.fixture
def client(storage_url: str) -> Iterator[Client]:
    c = Client(storage_url, cancel_poll=0.05)
    yield c
    c.close(wait=False)


@pytest.fixture
def wf(storage_url: str) -> Iterator[object]:
    workflow.init(storage_url, cancel_poll=0.05)
    yield workflow
    workflow.shutdown(wait=False)
