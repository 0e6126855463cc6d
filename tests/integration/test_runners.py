"""Runners: where a Client's workflows run is chosen at construction, and every running call
(run, run_async, resume, resume_async, resume_all, get_output_async) goes through it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from durableflow import Client, WorkflowExecutionError, workflow
from durableflow.client import Runner, register_runner, routing
from durableflow.client.runners import EmbeddedRunner
from durableflow.config import ClientSettings
from helpers import append_line


@workflow.task
def double(x: int) -> int:
    return 2 * x


@workflow.task
def remote_double(x: int) -> int:  # claimed by the "remote" runner below (by name)
    return 2 * x


@workflow.task
def fail_once(flag: str, log: str) -> str:
    append_line(log, "ran")
    if not json.loads(Path(flag).read_text()):
        raise ValueError("not yet")
    return "done"


class Recording(Runner):
    """A plugin runner: records each call, then runs it on the Client's embedded runner."""

    name = "recording"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls: list[tuple[str, str]] = []

    @property
    def _inner(self) -> EmbeddedRunner:
        return self.client._embedded

    def start(self, workflow_id, dag, args, kwargs, metadata, timeout_s=None):  # type: ignore[no-untyped-def]
        self.calls.append(("start", workflow_id))
        return self._inner.start(workflow_id, dag, args, kwargs, metadata, timeout_s)

    def resume_async(self, workflow_id: str, *, wait: bool = True) -> Future[Any]:
        self.calls.append(("resume", workflow_id))
        return self._inner.resume_async(workflow_id, wait=wait)

    def resume_many(self, workflow_ids: list[str]) -> list[tuple[str, Future[Any]]]:
        self.calls.extend(("resume_many", workflow_id) for workflow_id in workflow_ids)
        return self._inner.resume_many(workflow_ids)

    def output(self, workflow_id: str, task_id: str | None) -> Future[Any]:
        self.calls.append(("output", workflow_id))
        return self._inner.output(workflow_id, task_id)

    def result(self, handle: Any) -> Any:
        return handle.result(timeout=60)

    def claims(self, *, dag: Any = None, workflow_id: str | None = None) -> bool:
        functions = [dag.func] if dag is not None else self.client.root_functions(workflow_id or "")
        return any(getattr(f, "__name__", "").startswith("remote_") for f in functions)


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Recording]]:
    """The "recording" runner registered (and, for the auto runner, tied to ``json``, which is
    always imported here); every instance made is listed."""
    made: list[Recording] = []

    def factory(client: Client) -> Recording:
        made.append(Recording(client))
        return made[-1]

    monkeypatch.setattr(routing, "RUNNERS", dict(routing.RUNNERS))
    monkeypatch.setattr(routing, "LIBRARIES", dict(routing.LIBRARIES))
    register_runner("Recording", factory, library="json")
    yield made


def test_every_running_call_goes_through_the_runner_chosen_by_name(plugin, tmp_path):
    flag, log = tmp_path / "flag", tmp_path / "log"
    flag.write_text("false")
    with Client(tmp_path / "store", runner="recording") as client:
        runner = plugin[0]
        assert client.runner is runner
        assert client.run(double.bind(2), workflow_id="a") == 4
        assert client.run_async(double.bind(3), workflow_id="b").result(60) == 6
        with pytest.raises(WorkflowExecutionError):
            client.run(fail_once.bind(str(flag), str(log)), workflow_id="c")
        flag.write_text("true")
        assert client.resume("c") == "done"
        assert client.get_output_async("a").result(60) == 4
        with pytest.raises(WorkflowExecutionError):
            client.run(fail_once.bind(str(flag.with_name("no")), str(log)), workflow_id="d")
        handles = client.resume_all(include_failed=True)
        assert [wid for wid, _ in handles] == ["d"]
        assert runner.calls == [
            ("start", "a"),
            ("start", "b"),
            ("start", "c"),
            ("resume", "c"),
            ("output", "a"),
            ("start", "d"),
            ("resume_many", "d"),
        ]


def test_the_auto_runner_sends_a_plugin_the_calls_it_claims_and_keeps_the_rest(plugin, tmp_path):
    with Client(tmp_path / "store", runner="auto") as client:
        assert client.run(double.bind(1), workflow_id="here") == 2
        assert client.run(remote_double.bind(1), workflow_id="there") == 2
        assert client.get_output_async("here").result(60) == 2
        assert client.get_output_async("there").result(60) == 2
        (runner,) = plugin
        assert runner.calls == [("start", "there"), ("output", "there")]


def test_auto_keeps_an_explicitly_chosen_executor_embedded(plugin, tmp_path, monkeypatch):
    with Client(tmp_path / "a", runner="auto", executor="thread") as client:
        assert isinstance(client.runner, EmbeddedRunner)
        assert client.run(remote_double.bind(1)) == 2
    monkeypatch.setenv("DURABLEFLOW_EXECUTOR", "thread")
    with Client(tmp_path / "b", runner="auto") as client:
        assert isinstance(client.runner, EmbeddedRunner)
    assert plugin == []


def test_an_unknown_runner_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"unknown runner 'nowhere'.*embedded"):
        Client(tmp_path / "store", runner="nowhere")


def test_a_factory_that_makes_no_runner_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(routing, "RUNNERS", dict(routing.RUNNERS))
    register_runner("broken", lambda client: object())  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match=r"runner 'broken' made .* not a Runner"):
        Client(tmp_path / "store", runner="broken")


def test_client_settings_open_a_client_like_the_first_and_hide_the_key(tmp_path):
    with Client(
        tmp_path / "store",
        signing_key="secret-key",
        max_running_workflows=3,
        max_pending_workflows=5,
        lease_ttl=12.5,
        cancel_poll=0.25,
        env_policy="error",
    ) as first:
        settings = first.settings
        assert isinstance(settings, ClientSettings)
        assert "secret-key" not in repr(settings)
        assert first.lease_ttl == 12.5
        with Client(settings.storage_url, **settings.client_options()) as second:
            assert second.settings == settings
            assert second.run(double.bind(4), workflow_id="x") == 8
        assert first.get_output("x") == 8  # signed with the same key
