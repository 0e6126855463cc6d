"""A local Ray, started once for the tests of this folder, and their storages.

Test modules here are imported as ``tests.ray.test_*``; Ray workers (and the coordinator actor)
import the same modules to run their task functions, so the job's ``PYTHONPATH`` holds the
repository root. Ray is required: without it every test here is skipped with the reason, and
with ``CI`` or ``DURABLEFLOW_REQUIRE_RAY`` set that is an error instead.

``wf`` runs each test on file storage and on S3 (SeaweedFS on 127.0.0.1, or moto where the
``weed`` binary is missing); Ray workers get the test servers' dummy credentials.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

try:
    import ray
except ImportError:  # pragma: no cover - CI installs Ray
    if os.environ.get("CI") or os.environ.get("DURABLEFLOW_REQUIRE_RAY"):
        raise
    NO_RAY = "tests/ray skipped: Ray is not installed (pip install 'durableflow[ray]')"
    collect_ignore_glob = ["test_*.py"]

    def pytest_report_header() -> str:
        return NO_RAY

    def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.write_line(NO_RAY)


import uuid  # noqa: E402

from durableflow import workflow  # noqa: E402

try:
    from durableflow.testing import s3server
except ImportError:  # boto3 missing: no S3 here
    s3server = None  # type: ignore[assignment]

REQUIRED = bool(os.environ.get("CI") or os.environ.get("DURABLEFLOW_REQUIRE_S3"))
S3_ENV = (
    {
        "AWS_ACCESS_KEY_ID": s3server.ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": s3server.SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if s3server is not None
    else {}
)


def pytest_configure(config: pytest.Config) -> None:
    # Plain Ray's dag.execute(), the reference the drop-in tests compare with, is deprecated.
    config.addinivalue_line("filterwarnings", "ignore:DAGNode.execute:DeprecationWarning")


def worker_pythonpath() -> str:
    """What Ray workers need on their path to import test modules and ``tests/helpers.py``."""
    parts = [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in parts if p)


_started_here = False


@pytest.fixture(autouse=True)
def ray_session() -> None:
    """Ray for the tests of this folder: started once, 2 CPUs, no dashboard, never another
    cluster on the host; stopped after the folder's last test (see below)."""
    global _started_here
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            logging_level="ERROR",
            runtime_env={"env_vars": {"PYTHONPATH": worker_pythonpath(), **S3_ENV}},
        )
        _started_here = True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Stop our Ray when the next test is not one of this folder's (or there is none)."""
    global _started_here
    yield
    if _started_here and (nextitem is None or Path(str(nextitem.path)).parent != HERE):
        ray.shutdown()
        _started_here = False


@pytest.fixture(scope="session")
def s3_server() -> Iterator[object]:
    """An S3 server for the tests of this folder: SeaweedFS, or moto without ``weed``."""
    if s3server is None:
        if REQUIRED:
            pytest.fail("boto3 is not installed (required here: CI is set)")
        pytest.skip("boto3 is not installed (pip install 'durableflow[s3]')")
    if s3server.find_weed() is not None:
        server = s3server.start_seaweedfs(bucket="durableflow-ray-tests")
    else:
        server = s3server.start_moto(bucket="durableflow-ray-tests")
    yield server
    server.stop()


@pytest.fixture(params=["file", "s3"])
def storage_url(
    request: pytest.FixtureRequest, storage_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A fresh storage: a directory, or a prefix on the S3 server."""
    if request.param == "file":
        return str(storage_dir)
    server = request.getfixturevalue("s3_server")
    for name, value in server.environ().items():
        monkeypatch.setenv(name, value)
    url: str = server.url(f"ray-tests/{uuid.uuid4().hex}")
    return url


@pytest.fixture
def wf(storage_url: str) -> Iterator[object]:
    """The workflow facade on a fresh storage, on the Ray executor."""
    workflow.init(storage_url, executor="ray", cancel_poll=0.05)
    yield workflow
    workflow.shutdown(wait=False)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A file tasks append a line to each time they run."""
    return tmp_path / "runs.log"
