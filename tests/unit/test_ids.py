"""Ids are limited in UTF-8 bytes, the unit file systems count (issue 9, item 11)."""

from __future__ import annotations

import pytest

from durableflow import InvalidWorkflowIdError
from durableflow.model.ids import MAX_ID_BYTES, validate_task_id, validate_workflow_id
from durableflow.model.task import TaskOptions
from durableflow.storage import layout
from durableflow.storage.base import MAX_KEY_LENGTH, check_key

# Each passed the old 256-character rule and failed on file storage: "File name too long".
_TOO_LONG_IN_BYTES = {
    "256 ASCII": "x" * 256,
    "86 CJK": "漢" * 86,
    "64 emoji": "😀" * 64,
    "200 emoji": "😀" * 200,
    "100 emoji": "😀" * 100,
}
# The longest ids that fit, made of 1-, 2-, 3- and 4-byte characters.
_LONGEST = {
    "255 ASCII": "x" * 255,
    "127 two-byte + 1": "é" * 127 + "x",
    "85 CJK": "漢" * 85,
    "63 emoji + 3": "😀" * 63 + "abc",
}


@pytest.mark.parametrize("bad", list(_TOO_LONG_IN_BYTES.values()), ids=list(_TOO_LONG_IN_BYTES))
def test_ids_too_long_in_bytes_are_refused_with_their_byte_length(bad: str) -> None:
    with pytest.raises(InvalidWorkflowIdError, match=f"at most {MAX_ID_BYTES} bytes") as info:
        validate_workflow_id(bad)
    assert info.value.workflow_id == bad
    if len(bad) <= MAX_ID_BYTES:  # the message gives the byte length and the limit
        assert f"got {len(bad.encode())} bytes" in str(info.value)
    with pytest.raises(InvalidWorkflowIdError, match="invalid task id") as task_info:
        validate_task_id(bad)
    assert task_info.value.task_id == bad


@pytest.mark.parametrize("good", list(_LONGEST.values()), ids=list(_LONGEST))
def test_the_longest_ids_that_fit_in_bytes_pass(good: str) -> None:
    assert len(good.encode()) <= MAX_ID_BYTES
    assert validate_workflow_id(good) == good
    assert validate_task_id(good) == good


def test_a_task_id_option_is_checked_in_bytes() -> None:
    with pytest.raises(InvalidWorkflowIdError, match="task id") as info:
        TaskOptions(task_id="😀" * 100)
    assert isinstance(info.value, ValueError)  # what Ray-era code catches


@pytest.mark.parametrize("bad", ["", "a/b", "..", ".x", "a\nb", "\ud800", 7])
def test_task_ids_follow_the_workflow_id_rules(bad: object) -> None:
    with pytest.raises(InvalidWorkflowIdError, match="invalid task id"):
        validate_task_id(bad)


def test_a_huge_id_is_not_echoed_whole() -> None:
    with pytest.raises(InvalidWorkflowIdError) as info:
        validate_workflow_id("y" * 100_000)
    assert len(str(info.value)) < 300


def test_keys_of_the_longest_ids_fit_every_backend() -> None:
    wid, tid = "😀" * 63 + "abc", "漢" * 85
    keys = [
        layout.run_key(wid),
        layout.output_key(wid, tid),
        layout.attempt_key(wid, tid),
        layout.error_key(wid, tid),
        layout.event_key(wid, tid),
        layout.spec_key(wid, tid),
        layout.dirty_key(wid),
    ]
    for key in keys:
        assert check_key(key) == key
        assert len(key.encode()) <= MAX_KEY_LENGTH - 400  # room for an S3 prefix
        assert all(len(part.encode()) <= MAX_ID_BYTES for part in key.split("/"))
