"""The longest valid ids work on every backend; one byte more is refused before anything runs."""

from __future__ import annotations

import pytest

from durableflow import Client, InvalidWorkflowIdError, WorkflowStatus, workflow

_WID = "😀" * 63 + "abc"  # 255 bytes in UTF-8
_TID = "漢" * 85  # 255 bytes


@workflow.task
def double(x: int) -> int:
    return 2 * x


def test_ids_of_255_bytes_run_read_and_delete(storage_url: str) -> None:
    with Client(storage_url) as client:
        assert client.run(double.options(task_id=_TID).bind(21), workflow_id=_WID) == 42
        assert client.get_status(_WID) == WorkflowStatus.SUCCESSFUL
        assert client.get_output(_WID, task_id=_TID) == 42
        assert (_WID, WorkflowStatus.SUCCESSFUL) in client.list_all()
        client.delete(_WID)
        assert _WID not in dict(client.list_all())


def test_an_id_one_byte_too_long_is_refused_before_anything_is_stored(storage_url: str) -> None:
    with Client(storage_url) as client:
        with pytest.raises(InvalidWorkflowIdError, match="256 bytes"):
            client.run(double.bind(1), workflow_id=_WID + "x")
        with pytest.raises(InvalidWorkflowIdError, match="256 bytes"):
            double.options(task_id=_TID + "x")
        assert client.list_all() == []
        assert client.storage.list("") == []
