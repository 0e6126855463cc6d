"""What a task's ``runtime_env`` resolved to: recorded at submission, compared on resume.

A resume whose tasks would run in another environment than the one recorded warns (policy
warn) or is refused (policy error), naming the workflow, the task and what changed; an
unchanged one resumes silently. The changed requirements come the way they do in practice: a
fork whose new DAG (the fixed code) asks for other ones. Its virtualenv is built from the
package registry with uv, in a cache shared by the module.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durableflow import Client, EnvironmentMismatchError, WorkflowExecutionError, workflow
from durableflow.errors import EnvironmentChangedWarning, RuntimeEnvError
from durableflow.executors.local import ThreadExecutor
from durableflow.model.dag import flatten
from durableflow.model.environment import diff_task_env
from durableflow.model.status import WorkflowStatus
from durableflow.runtime.task_env import record_task_envs, resolve_task_env
from durableflow.storage import layout


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
def ready(flag: str) -> bool:
    if not Path(flag).exists():
        raise ValueError("not yet")
    return True


@workflow.task
def six_version(_: bool) -> str:
    import six

    return str(six.__version__)


@workflow.task
def token(_: bool) -> str:
    return os.environ.get("TOKEN", "") + "@" + os.getcwd()


def _pipeline(flag: Path, runtime_env: dict[str, Any], task: Any = six_version) -> Any:
    return task.options(task_id="t", runtime_env=runtime_env).bind(
        ready.options(task_id="r").bind(str(flag))
    )


def _forked_with_new_requirements(client: Client, tmp_path: Path) -> None:
    """A workflow that failed before its task ``t`` ran; a fork of it asking for six 1.16."""
    flag = tmp_path / "flag"
    with pytest.raises(WorkflowExecutionError):
        client.run(_pipeline(flag, {"pip": ["six==1.15.0"]}), workflow_id="src")
    flag.touch()
    fixed = _pipeline(flag, {"pip": ["six==1.16.0"]})
    client.fork("src", "fix", from_task="t", dag=fixed)


def test_resume_with_changed_requirements_warns_naming_workflow_and_task(tmp_path: Path) -> None:
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2)) as client:
        _forked_with_new_requirements(client, tmp_path)
        with pytest.warns(EnvironmentChangedWarning) as caught:
            assert client.resume("fix") == "1.16.0"  # then it runs, in the new environment
        (message,) = [str(w.message) for w in caught]
        assert message.startswith("workflow 'fix' resumes in a changed environment")
        assert "task 't' runtime_env requirements: [six==1.15.0] -> [six==1.16.0]" in message
        assert "python" not in message.split("task 't'")[1]  # only what changed is named


def test_resume_with_changed_requirements_is_refused_under_error_policy(tmp_path: Path) -> None:
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2), env_policy="error") as client:
        _forked_with_new_requirements(client, tmp_path)
        with pytest.raises(
            EnvironmentMismatchError, match="task 't' runtime_env requirements"
        ) as caught:
            client.resume("fix")
        error = caught.value
        assert str(error).startswith("workflow 'fix' resumes in a changed environment")
        assert (error.workflow_id, error.task_id) == ("fix", "t")
        assert error.diff.task_envs_changed == {
            "t": ("requirements: [six==1.15.0] -> [six==1.16.0]",)
        }
        assert client.get_status("fix") is WorkflowStatus.RESUMABLE
        assert client.store.list_done("fix") == set()  # nothing ran
        assert client.environment_diff("fix").task_envs_changed == error.diff.task_envs_changed


def test_unchanged_task_env_resumes_silently_and_records_no_secret(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    runtime_env = {"env_vars": {"TOKEN": "s3cret-value"}, "working_dir": str(tmp_path)}
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2), env_policy="error") as client:
        with pytest.raises(WorkflowExecutionError):
            client.run(_pipeline(flag, runtime_env, token), workflow_id="w")
        raw = client.storage.get(layout.run_key("w")) or b""
        assert b"s3cret-value" not in raw
        recorded = client.get_metadata("w")["runtime_env"]
        (resolved,) = recorded["resolved_task_envs"].values()
        assert recorded["task_env_digests"] == {"t": next(iter(recorded["resolved_task_envs"]))}
        assert resolved["env_vars"] == ["TOKEN"] and resolved["python"] is None
        assert resolved["working_dir"] == str(tmp_path) and resolved["requirements"] == []
        flag.touch()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert client.resume("w") == f"s3cret-value@{tmp_path}"
        assert client.environment_diff("w").is_empty


def test_a_task_with_a_checkpoint_is_not_compared_and_old_records_are_read(
    tmp_path: Path,
) -> None:
    flag = tmp_path / "flag"
    with Client(str(tmp_path / "s"), executor=ThreadExecutor(2), env_policy="error") as client:
        dag = _pipeline(flag, {"env_vars": {"TOKEN": "a"}}, token)
        with pytest.raises(WorkflowExecutionError):
            client.run(dag, workflow_id="w")
        record = client.store.read_run("w")
        assert record is not None
        env = dict(record.runtime_env)
        (digest,) = env["resolved_task_envs"]
        changed = {**env["resolved_task_envs"][digest], "python_version": "3.0.1"}
        env["resolved_task_envs"] = {digest: changed}
        client.store.write_run(record.replace(runtime_env=env))
        assert client.environment_diff("w").task_envs_changed == {
            "t": (f"python_version: 3.0.1 -> {resolve_task_env(None, 't', 'x')['python_version']}",)
        }
        old = {k: v for k, v in env.items() if k not in ("resolved_task_envs", "task_env_digests")}
        client.store.write_run(record.replace(runtime_env=old))  # a record from before
        flag.touch()
        assert client.resume("w") == "a@" + os.getcwd()
        assert client.environment_diff("w").is_empty  # t has its checkpoint now


def test_resolution_names_env_vars_and_hides_their_values() -> None:
    one = resolve_task_env({"env_vars": {"A": "1", "B": "2"}}, "t", "salt")
    again = resolve_task_env({"env_vars": {"B": "2", "A": "1"}}, "t", "salt")
    other = resolve_task_env({"env_vars": {"A": "1", "B": "3"}}, "t", "salt")
    assert one == again and one["env_vars"] == ["A", "B"]
    assert one["env_vars_digest"] != other["env_vars_digest"]
    assert (
        one["env_vars_digest"]
        != resolve_task_env({"env_vars": {"A": "1", "B": "2"}}, "t", "s2")["env_vars_digest"]
    )  # salted
    assert diff_task_env(one, other) == (
        "env_vars: values changed (not shown: they may be secrets)",
    )
    renamed = resolve_task_env({"env_vars": {"A": "1", "C": "2"}}, "t", "salt")
    assert diff_task_env(one, renamed) == ("env_vars: added C; removed B",)
    assert diff_task_env(one, one) == ()


def test_diff_lines_and_what_is_not_compared() -> None:
    then = resolve_task_env({"pip": ["b", "a"], "working_dir": "/x"}, "t", "s")
    assert then["requirements"] == ["a", "b"] and then["venv"]
    now = resolve_task_env({"pip": ["a", "c"], "working_dir": "/y"}, "t", "s")
    assert diff_task_env(then, now) == (
        "requirements: [a, b] -> [a, c]",
        "working_dir: /x -> /y",
    )
    rebuilt = {**then, "venv": "other"}  # same requirements, another exact interpreter build
    assert diff_task_env(then, rebuilt) == (f"virtualenv: {then['venv']} -> other",)
    assert diff_task_env({"requirements": ["a"]}, now) == ("requirements: [a] -> [a, c]",)
    assert diff_task_env(then, {"error": "no python"}) == ("cannot be resolved now: no python",)
    missing = {"python": "/nowhere/python"}
    with pytest.raises(RuntimeEnvError, match=r"task 't': runtime_env python .* does not exist"):
        resolve_task_env(missing, "t", "s")


@workflow.task
def gather(*values: str) -> list[str]:
    return list(values)


def test_recording_a_thousand_task_envs_is_cheap() -> None:
    tasks = [
        token.options(task_id=f"t{i}", runtime_env={"pip": ["six"], "env_vars": {"K": str(i % 2)}})
        for i in range(1000)
    ]
    flat = flatten(gather.bind(*[t.bind(True) for t in tasks]))
    start = time.perf_counter()
    recorded = record_task_envs(flat.specs)
    took = time.perf_counter() - start
    assert len(recorded["task_env_digests"]) == 1000
    assert len(recorded["resolved_task_envs"]) == 2  # K=0 and K=1, each stored once
    assert took < 1.0, took  # ~80 us per task measured on a busy 2-core machine
