"""Signed checkpoints: with a signing key, unsigned or tampered values are refused unread."""

from __future__ import annotations

import pytest

from durableflow import CheckpointSignatureError, Client, WorkflowExecutionError, workflow
from durableflow.storage import layout


@workflow.task
def make(value: int) -> int:
    return value


@workflow.task
def use(value: int, fail: bool) -> int:
    if fail:
        raise RuntimeError("stop here")
    return value + 1


def test_signed_values_round_trip_and_tampering_is_refused(storage_url):
    with Client(storage_url, signing_key="k1") as client:
        with pytest.raises(WorkflowExecutionError):
            client.run(
                use.options(max_retries=0).bind(make.options(task_id="m").bind(1), True),
                workflow_id="w",
            )
        assert client.get_output("w", task_id="m") == 1
        key = layout.output_key("w", "m")
        data = bytearray(client.storage.get(key) or b"")
        data[-40] ^= 0xFF  # one byte flipped inside the signed body
        client.storage.put(key, bytes(data))
        with pytest.raises(CheckpointSignatureError) as info:
            client.get_output("w", task_id="m")
        assert (info.value.workflow_id, info.value.task_id) == ("w", "m")


def test_a_reader_with_a_key_refuses_unsigned_values(storage_url):
    with Client(storage_url) as writer:
        writer.run(make.options(task_id="m").bind(5), workflow_id="plain")
    with Client(storage_url, signing_key="k1") as reader:
        with pytest.raises(CheckpointSignatureError, match="unsigned"):
            reader.get_output("plain")


def test_another_key_or_no_key_cannot_read_signed_values(storage_url, monkeypatch):
    monkeypatch.setenv("DURABLEFLOW_SIGNING_KEY", "from-env")
    with Client(storage_url) as writer:
        assert writer.run(make.bind(5), workflow_id="signed") == 5
    with Client(storage_url, signing_key="other") as reader:
        with pytest.raises(CheckpointSignatureError, match="bad signature"):
            reader.get_output("signed")
    monkeypatch.delenv("DURABLEFLOW_SIGNING_KEY")
    with Client(storage_url) as reader:
        with pytest.raises(CheckpointSignatureError, match="no signing key"):
            reader.get_output("signed")
        with pytest.raises(CheckpointSignatureError):
            reader.resume("signed")


# -- signatures bound to where a value belongs (issue 9, item 7) --------------------------------


def test_an_empty_signing_key_is_refused_not_turned_off(storage_url, monkeypatch):
    with pytest.raises(ValueError, match="signing key must not be empty"):
        Client(storage_url, signing_key="")
    monkeypatch.setenv("DURABLEFLOW_SIGNING_KEY", "")
    with pytest.raises(ValueError, match="signing key must not be empty"):
        Client(storage_url)


def test_an_output_copied_to_another_task_is_refused(storage_url):
    with Client(storage_url, signing_key="k1") as client:
        client.run(make.options(task_id="a").bind(1), workflow_id="w1")
        client.run(make.options(task_id="b").bind(2), workflow_id="w2")
        stolen = client.storage.get(layout.output_key("w1", "a"))
        client.storage.put(layout.output_key("w2", "b"), stolen or b"")
        with pytest.raises(CheckpointSignatureError, match="copied") as info:
            client.get_output("w2", task_id="b")
        assert info.value.key == layout.output_key("w2", "b")
        dag = make.options(task_id="d").bind(make.options(task_id="c").bind(3))
        client.run(dag, workflow_id="w3")
        inner = client.storage.get(layout.output_key("w3", "c"))
        client.storage.put(layout.output_key("w3", "d"), inner or b"")  # same workflow
        with pytest.raises(CheckpointSignatureError, match="copied"):
            client.get_output("w3", task_id="d")


def test_an_unsigned_run_record_is_refused_with_a_key(storage_url):
    with Client(storage_url, signing_key="k1") as client:
        client.run(make.options(task_id="a").bind(1), workflow_id="w1")
        key = layout.run_key("w1")
        raw = client.storage.get(key) or b""
        client.storage.put(key, raw[: raw.rindex(b"\x00DFLMAC2")])  # the JSON, unsigned
        with pytest.raises(CheckpointSignatureError, match="unsigned"):
            client.get_status("w1")
