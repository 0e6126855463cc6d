"""A local Ray, started once for the whole ``tests/ray`` session.

Test modules here are imported as ``tests.ray.test_*``; Ray workers (and the coordinator actor)
import the same modules to run their task functions, so the job's ``PYTHONPATH`` holds the
repository root. Ray is required: without it every test here is skipped with the reason, and
with ``CI`` or ``DURABLEFLOW_REQUIRE_RAY`` set that is an error instead.
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
    pytest.skip("Ray is not installed (pip install 'durableflow[ray]')", allow_module_level=True)

from durableflow import workflow  # noqa: E402


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
            runtime_env={"env_vars": {"PYTHONPATH": worker_pythonpath()}},
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


@pytest.fixture
def wf(storage_dir: Path) -> Iterator[object]:
    """The workflow facade on a fresh directory, on the Ray executor."""
    workflow.init(str(storage_dir), executor="ray", cancel_poll=0.05)
    yield workflow
    workflow.shutdown(wait=False)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A file tasks append a line to each time they run."""
    return tmp_path / "runs.log"
