"""Fixtures of the actor tests: every backend (file, SQLite, S3 on SeaweedFS).

This folder is put on ``sys.path`` so that ``actor_classes`` imports the same way here and in
the subprocesses the tests start (``PYTHONPATH``): actors of those classes are stored by
reference, as a user's would be.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from durableflow import Client

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

BACKENDS = ("file", "sqlite", "s3")


def url_of(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "file":
        return str(tmp_path / "store")
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'actors.db'}"
    request.getfixturevalue("s3_credentials")
    server = request.getfixturevalue("seaweedfs_server")
    return str(server.url(f"actors/{uuid.uuid4().hex}"))


@pytest.fixture
def url_for(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """``url_for(kind)``: a fresh storage URL of a backend chosen in the test body."""
    return lambda kind: url_of(request, kind, tmp_path)


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh storage of each backend, reachable from child processes by its URL."""
    return url_of(request, request.param, tmp_path)


@pytest.fixture
def file_url(tmp_path: Path) -> str:
    """A fresh file storage (tests of the API's shape, not of a backend)."""
    return str(tmp_path / "store")


@pytest.fixture
def client(storage_url: str) -> Iterator[Client]:
    c = Client(storage_url, cancel_poll=0.05)
    yield c
    c.close(wait=False)


@pytest.fixture
def file_client(file_url: str) -> Iterator[Client]:
    c = Client(file_url, cancel_poll=0.05)
    yield c
    c.close(wait=False)


@pytest.fixture
def child_env() -> dict[str, str]:
    """The environment of a subprocess that imports ``actor_classes``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env
