"""The runtime environment: recorded at submission, compared on resume per the policy.

A changed package is simulated by editing the stored record; a changed task is a module whose
file is rewritten and reloaded, as a redeploy between crash and resume would do.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import sys
import textwrap
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from durableflow import (
    Client,
    EnvironmentMismatchError,
    WorkflowExecutionError,
    WorkflowStatus,
    task,
    workflow,
)
from durableflow.errors import EnvironmentChangedWarning
from durableflow.executors.local import ThreadExecutor
from durableflow.model.environment import diff_environments
from durableflow.runtime.environment import (
    expand_environment,
    installed_distributions,
    process_environment,
)

CLICK = importlib.metadata.version("click")


@task
def flaky(flag: str) -> str:
    if not Path(flag).exists():
        raise ValueError("not yet")
    return "done"


def failed_workflow(client: Client, tmp_path: Path, workflow_id: str = "w") -> Path:
    flag = tmp_path / f"flag-{workflow_id}"
    with pytest.raises(WorkflowExecutionError):
        client.run(flaky.bind(str(flag)), workflow_id=workflow_id)
    flag.touch()
    return flag


def change_package(client: Client, workflow_id: str, name: str, version: str) -> None:
    record = client.store.read_run(workflow_id)
    assert record is not None
    env = expand_environment(client.store, record.runtime_env)  # the packages, inline
    env["packages"] = {**env["packages"], name: version}
    client.store.write_run(record.replace(runtime_env=env))


def test_submission_records_python_platform_packages_and_task_fingerprints(client: Client):
    node = flaky.options(task_id="a", runtime_env={"pip": ["requests"]}).bind("/nonexistent")
    with pytest.raises(WorkflowExecutionError):
        client.run(node, workflow_id="w")
    env = client.get_metadata("w")["runtime_env"]
    assert env["python"] == platform.python_version()
    assert env["implementation"] == platform.python_implementation()
    assert env["platform"] == f"{sys.platform}-{platform.machine()}"
    assert env["durableflow"] == importlib.metadata.version("durableflow")
    assert env["packages"]["click"] == CLICK
    assert env["packages"]["cloudpickle"] == importlib.metadata.version("cloudpickle")
    key = f"{__name__}:flaky"
    assert env["functions"] == {key: env["functions"][key]} and env["functions"][key].startswith(
        "sha256:"
    )
    assert env["task_runtime_envs"] == {"a": {"pip": ["requests"]}}
    submitted = client.submit(flaky.bind("/x"), workflow_id="detached")
    assert client.get_metadata(submitted)["runtime_env"]["functions"] == {
        key: env["functions"][key]
    }


def test_package_list_is_stored_once_outside_the_run_record(client: Client):
    for i in range(3):
        client.submit(flaky.bind("/x"), workflow_id=f"w{i}")
    assert len(client.storage.list("v1/environments/")) == 1
    record = client.store.read_run("w0")
    assert "packages" not in record.runtime_env
    assert record.runtime_env["package_count"] == len(process_environment()["packages"])
    assert len(record.to_bytes()) < 2000  # status changes rewrite it: keep it small
    assert client.get_metadata("w2")["runtime_env"]["packages"]["click"] == CLICK


def test_package_scan_matches_importlib_metadata_and_is_cached():
    found = installed_distributions()
    for name in ("click", "cloudpickle", "pytest", "durableflow"):
        assert found[name] == importlib.metadata.version(name)
    assert process_environment() is process_environment()
    started = time.perf_counter()
    for _ in range(100):
        process_environment()
    assert time.perf_counter() - started < 0.05


class RecordingExecutor(ThreadExecutor):
    """Passes ``runtime_env`` through to the executor, as Ray's does (nothing is built here)."""

    handles_runtime_env = True

    def __init__(self) -> None:
        super().__init__()
        self.options: list[dict[str, Any]] = []

    def submit(self, fn: Any, call: Any, options: Mapping[str, Any]) -> Future[Any]:
        self.options.append(dict(options))
        return super().submit(fn, call, options)


def test_runtime_env_option_reaches_the_executor(storage_dir: Path):
    executor = RecordingExecutor()
    with Client(str(storage_dir), executor=executor) as client:
        flag = storage_dir / "flag"
        flag.touch()
        client.run(
            flaky.options(runtime_env={"env_vars": {"A": "1"}}).bind(str(flag)), workflow_id="w"
        )
    assert executor.options == [{"runtime_env": {"env_vars": {"A": "1"}}}]


def test_changed_package_warns_by_default_naming_it(client: Client, tmp_path: Path):
    failed_workflow(client, tmp_path)
    change_package(client, "w", "click", "0.0.1")
    with pytest.warns(EnvironmentChangedWarning, match=rf"package click: 0\.0\.1 -> {CLICK}"):
        assert client.resume("w") == "done"


def test_changed_package_refused_under_error_policy(storage_dir: Path, tmp_path: Path):
    with Client(str(storage_dir), env_policy="error") as client:
        failed_workflow(client, tmp_path)
        change_package(client, "w", "click", "0.0.1")
        change_package(client, "w", "ghost-package", "1.0")
        with pytest.raises(EnvironmentMismatchError, match=r"package click: 0\.0\.1 -> ") as caught:
            client.resume("w")
        assert caught.value.workflow_id == "w"
        assert caught.value.diff.packages_changed == {"click": ("0.0.1", CLICK)}
        assert caught.value.diff.packages_removed == {"ghost-package": "1.0"}
        assert client.get_status("w") is WorkflowStatus.FAILED  # nothing ran
        assert client.environment_diff("w").summary().startswith("package click")


def test_ignore_policy_and_environment_variable(storage_dir: Path, tmp_path: Path, monkeypatch):
    with Client(str(storage_dir), env_policy="ignore") as client:
        failed_workflow(client, tmp_path)
        change_package(client, "w", "click", "0.0.1")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert client.resume("w") == "done"
    monkeypatch.setenv("DURABLEFLOW_ENV_POLICY", "error")
    with Client(str(storage_dir)) as client:
        assert client.env_policy == "error"
        failed_workflow(client, tmp_path, "w2")
        change_package(client, "w2", "click", "0.0.1")
        with pytest.raises(EnvironmentMismatchError):
            client.resume("w2")
    with pytest.raises(ValueError, match="unknown environment policy"):
        Client(str(storage_dir), env_policy="sometimes")


def test_init_takes_the_policy(storage_dir: Path, tmp_path: Path):
    workflow.init(str(storage_dir), env_policy="error")
    try:
        failed_workflow(workflow.client(), tmp_path)
        change_package(workflow.client(), "w", "click", "0.0.1")
        with pytest.raises(EnvironmentMismatchError):
            workflow.resume("w")
    finally:
        workflow.shutdown(wait=False)


@pytest.fixture
def task_module(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    name = f"envtasks_{uuid.uuid4().hex[:8]}"
    path = tmp_path / "mods" / f"{name}.py"
    path.parent.mkdir()
    sys.path.insert(0, str(path.parent))
    yield name, path
    sys.path.remove(str(path.parent))
    sys.modules.pop(name, None)


SOURCE = """
from pathlib import Path
from durableflow import task

@task
def step(flag):
    if not Path(flag).exists():
        raise ValueError("{message}")
    return "{result}"

@task
def other(x):
    return x
"""


def test_changed_task_source_is_named(client: Client, tmp_path: Path, task_module):
    name, path = task_module
    path.write_text(textwrap.dedent(SOURCE.format(message="v1", result="v1")))
    module = importlib.import_module(name)
    flag = tmp_path / "flag"
    with pytest.raises(WorkflowExecutionError):
        client.run(module.step.bind(module.other.bind(str(flag))), workflow_id="w")
    recorded = client.get_metadata("w")["runtime_env"]["functions"]
    assert set(recorded) == {f"{name}:step", f"{name}:other"}
    assert client.environment_diff("w").is_empty
    # A redeploy: the function's code changes, the other one does not.
    path.write_text(textwrap.dedent(SOURCE.format(message="version two", result="v2")))
    importlib.reload(module)
    flag.touch()
    diff = client.environment_diff("w")
    assert diff.functions_changed == (f"{name}:step",)
    assert diff.lines() == [f"task function {name}:step (task {name}.step): source changed"]
    with pytest.warns(
        EnvironmentChangedWarning,
        match=rf"task function {name}:step \(task {name}\.step\): source changed",
    ):
        assert client.resume("w") in ("v1", "v2")  # which code runs: see docs/operating.md


def test_task_that_no_longer_imports_is_reported(client: Client, tmp_path: Path, task_module):
    name, path = task_module
    path.write_text(textwrap.dedent(SOURCE.format(message="v1", result="v1")))
    module = importlib.import_module(name)
    with pytest.raises(WorkflowExecutionError):
        client.run(module.step.bind(str(tmp_path / "flag")), workflow_id="w")
    path.unlink()  # the module is gone from this deployment
    sys.modules.pop(name)
    importlib.invalidate_caches()
    diff = client.environment_diff("w")
    assert list(diff.functions_missing) == [f"{name}:step"]
    assert diff.lines() == [
        f"task function {name}:step (task {name}.step): cannot be imported "
        f"(ModuleNotFoundError: No module named '{name}')"
    ]


def test_functions_pickled_by_value_are_not_compared():
    recorded = {
        "python": "3.11.7",
        "functions": {"__main__:f": "sha256:1", "m:<locals>.g": "sha256:2"},
    }
    current = {"python": "3.11.7"}
    from durableflow.runtime.environment import current_functions

    assert current_functions(recorded["functions"]) == {}
    assert diff_environments("w", recorded, current, {}).is_empty


def test_diff_of_scalars_and_nothing_recorded():
    diff = diff_environments(
        "w",
        {"python": "3.10.1", "durableflow": "0.1.0", "packages": {"a": "1"}},
        {"python": "3.11.7", "durableflow": "0.1.0", "packages": {"a": "1", "b": "2"}},
    )
    assert diff.lines() == ["python: 3.10.1 -> 3.11.7", "package b: added (2)"]
    assert diff.to_json()["changed"] == {"python": ["3.10.1", "3.11.7"]}
    assert not diff_environments("w", {}, {"python": "3"}).recorded
    assert diff_environments("w", {}, {"python": "3"}).is_empty


# -- one fingerprint per function, not per name (issue 10, item 9) ------------------------------

inc_lambda = task(lambda x: x + 1)
double_lambda = task(lambda x: x * 2)


def _make(kind: str) -> Any:
    if kind == "inc":

        def step(x: int) -> int:
            return x + 1

    else:

        def step(x: int) -> int:
            return x * 2

    return task(step)


def test_two_lambdas_are_two_recorded_functions(client: Client):
    assert client.run(double_lambda.bind(inc_lambda.bind(1)), workflow_id="w") == 4
    functions = client.get_metadata("w")["runtime_env"]["functions"]
    assert len(functions) == 2, functions  # was one: "...:<lambda>"
    for key in functions:
        assert key.startswith(f"{__name__}:<lambda>@test_environment.py:")
    assert len(set(functions.values())) == 2


def test_two_nested_functions_with_one_qualname_are_two_recorded_functions(client: Client):
    inc, double = _make("inc"), _make("double")
    assert client.run(double.bind(inc.bind(1)), workflow_id="w") == 4
    functions = client.get_metadata("w")["runtime_env"]["functions"]
    assert sorted(functions) == sorted(
        f"{__name__}:_make.<locals>.step@test_environment.py:{f.func.__code__.co_firstlineno}"
        for f in (inc, double)
    )


SHADOWED = """
from durableflow import task

@task
def step(x):
    return x + 1

first = step

@task
def step(x):
    return x * 2
"""


def test_a_shadowed_function_is_not_blamed_for_the_one_that_replaced_it(
    client: Client, task_module
):
    name, path = task_module
    path.write_text(textwrap.dedent(SHADOWED))
    module = importlib.import_module(name)
    assert client.run(module.step.bind(module.first.bind(1)), workflow_id="w") == 4
    functions = client.get_metadata("w")["runtime_env"]["functions"]
    assert sorted(functions) == [f"{name}:step", f"{name}:step@{path.name}:4"]
    # Nothing changed: the name now finds the second function, which is what was recorded.
    assert client.environment_diff("w").is_empty


def test_a_changed_function_is_reported_with_its_tasks_only(
    client: Client, tmp_path: Path, task_module
):
    name, path = task_module
    path.write_text(textwrap.dedent(SOURCE.format(message="v1", result="v1")))
    module = importlib.import_module(name)
    flag = tmp_path / "flag"
    dag = module.step.options(task_id="s1").bind(module.other.options(task_id="o1").bind(str(flag)))
    with pytest.raises(WorkflowExecutionError):
        client.run(module.step.options(task_id="s2").bind(dag), workflow_id="w")
    path.write_text(textwrap.dedent(SOURCE.format(message="v1", result="v1 but changed")))
    importlib.reload(module)
    diff = client.environment_diff("w")
    assert diff.function_tasks == {f"{name}:step": ("s1", "s2")}
    assert diff.lines() == [f"task function {name}:step (tasks s1, s2): source changed"]
    assert diff.to_json()["function_tasks"] == {f"{name}:step": ["s1", "s2"]}


# -- secrets in runtime_env (issue 9, item 12) ------------------------------------------------


def test_env_var_values_are_redacted_where_recorded_but_reach_the_task(storage_dir: Path):
    from durableflow.storage import layout

    executor = RecordingExecutor()
    runtime_env = {"env_vars": {"DB_PASSWORD": "hunter2", "MODE": "prod"}, "pip": ["x"]}
    with Client(str(storage_dir), executor=executor) as client:
        flag = storage_dir / "flag"
        flag.touch()
        node = flaky.options(task_id="t", runtime_env=runtime_env).bind(str(flag))
        assert client.run(node, workflow_id="w") == "done"
        recorded = client.get_metadata("w")["runtime_env"]["task_runtime_envs"]
        assert recorded == {
            "t": {"env_vars": {"DB_PASSWORD": "<redacted>", "MODE": "<redacted>"}, "pip": ["x"]}
        }
        assert b"hunter2" not in (client.storage.get(layout.run_key("w")) or b"")
    assert executor.options == [{"runtime_env": runtime_env}]  # the task gets the real values


def test_env_var_values_are_redacted_in_task_metadata(client: Client, tmp_path: Path):
    flag = tmp_path / "flag"
    flag.touch()
    node = flaky.options(task_id="t", runtime_env={"env_vars": {"DB_PASSWORD": "hunter2"}})
    client.run(node.bind(str(flag)), workflow_id="w")
    assert "hunter2" not in repr(client.get_metadata("w", task_id="t"))


def test_redaction_keeps_names_and_hides_unknown_objects():
    from durableflow.model.environment import redact_executor_options, redact_runtime_env

    class RuntimeEnvObject:
        def __repr__(self) -> str:
            return "RuntimeEnvObject(env_vars={'TOKEN': 'secret'})"

    assert redact_runtime_env({"env_vars": {"A": "1"}, "working_dir": "."}) == {
        "env_vars": {"A": "<redacted>"},
        "working_dir": ".",
    }
    assert redact_runtime_env({"env_vars": "A=1"}) == {"env_vars": "<redacted>"}
    assert redact_runtime_env(RuntimeEnvObject()) == "<RuntimeEnvObject>"
    options = {"num_cpus": 2, "runtime_env": {"env_vars": {"A": "1"}}}
    assert redact_executor_options(options) == {
        "num_cpus": 2,
        "runtime_env": {"env_vars": {"A": "<redacted>"}},
    }
    assert options["runtime_env"] == {"env_vars": {"A": "1"}}  # the original is untouched
