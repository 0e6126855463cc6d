"""Per-task runtime environments (``runtime_env=``) on the embedded executors.

Two tasks of one workflow in two virtualenvs with different versions of one package each see
their own; a cached environment is reused; env_vars and working_dir reach the subprocess; a
cancel or a timeout kills it; an environment that cannot be built fails with an error naming
the task. The virtualenvs are built from the package registry (uv, or venv and pip), once per
test session in a shared cache.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from durableflow import Client, WorkflowExecutionError, workflow
from durableflow.errors import RuntimeEnvError, WorkflowTimeoutError
from durableflow.executors.local import ProcessExecutor, ThreadExecutor
from durableflow.runtime.isolated import check_runtime_env, resolve_python


@pytest.fixture(scope="module", autouse=True)
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("envs")
    old = os.environ.get("DURABLEFLOW_ENV_CACHE")
    os.environ["DURABLEFLOW_ENV_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("DURABLEFLOW_ENV_CACHE", None)
    else:
        os.environ["DURABLEFLOW_ENV_CACHE"] = old


@workflow.task
def six_version() -> str:
    import six

    return str(six.__version__)


@workflow.task
def where() -> dict[str, str]:
    return {
        "python": sys.executable,
        "cwd": os.getcwd(),
        "color": os.environ.get("COLOR", ""),
        "pid": str(os.getpid()),
    }


@workflow.task
def both(a: str, b: str) -> list[str]:
    return [a, b]


@workflow.task
def forever() -> None:
    time.sleep(60)


@workflow.task
async def async_where() -> str:
    return sys.executable


OLD = {"pip": ["six==1.15.0"]}
NEW = {"uv": ["six==1.16.0"]}


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_two_tasks_in_two_virtualenvs_see_their_own_versions(tmp_path: Path, executor: str) -> None:
    with Client(str(tmp_path / "s"), executor=executor) as client:
        dag = both.bind(
            six_version.options(runtime_env=OLD, task_id="old").bind(),
            six_version.options(runtime_env=NEW, task_id="new").bind(),
        )
        assert client.run(dag, workflow_id="wf") == ["1.15.0", "1.16.0"]


def test_an_environment_is_built_once_and_reused(env_cache: Path) -> None:
    first = resolve_python(OLD, "t")
    start = time.monotonic()
    assert resolve_python({"pip": ["six==1.15.0"]}, "t") == first  # cached: no build
    assert time.monotonic() - start < 1
    assert Path(first).parent.parent.parent == env_cache
    assert resolve_python(NEW, "t") != first


def test_python_env_vars_and_working_dir_reach_the_task(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {"python": sys.executable, "env_vars": {"COLOR": "blue"}, "working_dir": str(work)}
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2)) as client:
        seen = client.run(where.options(runtime_env=env).bind(), workflow_id="wf")
        assert seen["color"] == "blue" and seen["cwd"] == str(work)
        assert seen["pid"] != str(os.getpid())  # a subprocess
        got = client.run(async_where.options(runtime_env=env).bind(), workflow_id="a")
        assert got == sys.executable


def test_a_timeout_kills_the_subprocess(tmp_path: Path) -> None:
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2)) as client:
        node = forever.options(runtime_env={"env_vars": {}}, timeout_s=0.5, max_retries=0)
        start = time.monotonic()
        with pytest.raises(WorkflowExecutionError) as caught:
            client.run(node.bind(), workflow_id="wf")
        assert isinstance(caught.value.__cause__, WorkflowTimeoutError)
        assert time.monotonic() - start < 20


def test_an_environment_that_cannot_be_built_names_the_task(tmp_path: Path) -> None:
    broken = {"pip": ["durableflow-no-such-package-xyz==0.0.1"]}
    with Client(str(tmp_path / "s"), executor=ProcessExecutor(1)) as client:
        node = six_version.options(runtime_env=broken, task_id="needs-it", max_retries=0)
        with pytest.raises(WorkflowExecutionError) as caught:
            client.run(node.bind(), workflow_id="wf")
        cause = caught.value.__cause__
        assert isinstance(cause, RuntimeEnvError)
        assert "'needs-it'" in str(cause) and "durableflow-no-such-package-xyz" in str(cause)
        assert not client.store.has_output("wf", "needs-it")
    with pytest.raises(RuntimeEnvError, match=r"'t'.*does not exist"):
        resolve_python({"python": "/no/such/python"}, "t")
    with pytest.raises(RuntimeEnvError, match="conda"):
        check_runtime_env({"conda": "env.yml"}, "t")
    with pytest.raises(RuntimeEnvError, match="pip or uv"):
        check_runtime_env({"pip": ["a"], "uv": ["b"]}, "t")
