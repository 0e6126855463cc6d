"""Rules for workflow and task ids: they become storage key segments, and so file names.

An id is one segment of a storage key (``v1/workflows/<wid>/outputs/<tid>``), which file
storage turns into one file or directory name. The limits are those of the tightest backend:

- at most :data:`MAX_ID_BYTES` (255) bytes in UTF-8, the longest file name of common file
  systems (ext4, XFS, btrfs, ZFS, APFS; NTFS counts 255 UTF-16 units, never fewer). A limit in
  characters is not enough: 86 CJK characters or 64 emoji already pass 255 bytes. File storage
  names its temporary files ``.tmp-<32 hex>-<at most 40 characters of the name>`` (at most 198
  bytes), so a name that fits fits its temporary file too;
- a key holding a workflow id and a task id stays far below the key limit of every backend
  (``storage.base.MAX_KEY_LENGTH``, 1,024, S3's limit in bytes): about 540 bytes at most;
- no path separators, no ``..``, no leading ``.`` (backends keep their own files there), only
  printable characters.

A bad id raises :class:`~durableflow.errors.InvalidWorkflowIdError` (also a ``ValueError``); for
a task id its ``task_id`` attribute names it.
"""

from __future__ import annotations

import time
import uuid

from durableflow.errors import InvalidWorkflowIdError

__all__ = [
    "MAX_ID_BYTES",
    "MAX_ID_LENGTH",
    "new_workflow_id",
    "validate_task_id",
    "validate_workflow_id",
]

MAX_ID_BYTES = 255
"""The longest id, in UTF-8 bytes: one file name on common file systems."""
MAX_ID_LENGTH = MAX_ID_BYTES
"""The longest id in characters (an id of ASCII characters only); the byte limit decides."""


def _problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a str, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_BYTES:  # cheap first: a character is at least one byte
        return (
            f"must be at most {MAX_ID_BYTES} bytes in UTF-8 (got {len(value)} characters); "
            "ids become file names"
        )
    if "/" in value or "\\" in value:
        return "must not contain path separators"
    if ".." in value:
        return "must not contain '..'"
    if value.startswith("."):
        return "must not start with '.'"
    if not value.isprintable():  # also refuses lone surrogates, which have no UTF-8 form
        return "must contain only printable characters"
    size = len(value.encode())
    if size > MAX_ID_BYTES:
        return (
            f"must be at most {MAX_ID_BYTES} bytes in UTF-8, got {size} bytes "
            f"({len(value)} characters); ids become file names, limited to {MAX_ID_BYTES} bytes"
        )
    return None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...{text[-15:]}"


def validate_workflow_id(workflow_id: object) -> str:
    """Return ``workflow_id`` if it is valid, else raise InvalidWorkflowIdError."""
    problem = _problem(workflow_id)
    if problem:
        raise InvalidWorkflowIdError(
            f"invalid workflow id {_shown(workflow_id)}: {problem}",
            workflow_id=workflow_id if isinstance(workflow_id, str) else None,
        )
    return workflow_id  # type: ignore[return-value]


def validate_task_id(task_id: object) -> str:
    """Return ``task_id`` if it is valid, else raise InvalidWorkflowIdError (a ValueError).

    The error is the id error of the whole tree (a task id and a workflow id follow the same
    rules); its ``task_id`` attribute carries the id refused.
    """
    problem = _problem(task_id)
    if problem:
        raise InvalidWorkflowIdError(
            f"invalid task id {_shown(task_id)}: {problem}",
            task_id=task_id if isinstance(task_id, str) else None,
        )
    return task_id  # type: ignore[return-value]


def new_workflow_id() -> str:
    """A fresh id: a random hex string followed by the start time, like Ray's."""
    return f"{uuid.uuid4().hex}.{time.time():.6f}"
