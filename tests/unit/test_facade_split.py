"""The facade split by responsibility keeps one public face: ``durableflow.workflow``."""

from __future__ import annotations

from durableflow import workflow
from durableflow.client.routing import AutoRunner
from durableflow.client.runners import EmbeddedRunner
from durableflow.facade import default, managing


def test_every_public_name_of_the_facade_resolves() -> None:
    missing = [name for name in workflow.__all__ if not hasattr(workflow, name)]
    assert missing == []


def test_the_parts_functions_are_the_facades_own() -> None:
    for module in (default, managing):
        for name in module.__all__:
            assert name in workflow.__all__, name
            assert getattr(workflow, name) is getattr(module, name), name


def test_the_default_client_runs_on_the_auto_runner_unless_an_executor_is_chosen(
    tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DURABLEFLOW_EXECUTOR", raising=False)
    client = workflow.init(str(tmp_path))
    try:
        assert client is workflow.client() is default.client()
        assert isinstance(client.runner, AutoRunner)
    finally:
        workflow.shutdown()
    assert not workflow.is_initialized()
    client = workflow.init(str(tmp_path), executor="thread")
    try:
        assert isinstance(client.runner, EmbeddedRunner)
    finally:
        workflow.shutdown()
