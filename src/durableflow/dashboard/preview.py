"""What a task's output looks like in the dashboard: its type, size and a truncated repr.

A checkpoint is read through the Reader's store (the Reader has no call for a value's size),
following a continuation's forward to the checkpoint that holds the value, and unpickled only
when that is safe and cheap: never a value that fails signature verification, never one whose
pickle is over :data:`PREVIEW_MAX_BYTES`. A big value's repr is built by :mod:`reprlib`, which
never builds the whole text.
"""

from __future__ import annotations

import reprlib
from typing import Any

from durableflow.client import Reader

__all__ = ["FULL_REPR_BYTES", "PREVIEW_CHARS", "PREVIEW_MAX_BYTES", "output_preview", "preview"]

PREVIEW_MAX_BYTES = 1 << 20
"""Checkpoints larger than this (pickled) are described, never unpickled by the dashboard."""
PREVIEW_CHARS = 2000
"""The longest output repr shown."""

_OUTPUT_KEY = "v1/workflows/{wid}/outputs/{tid}"  # storage layout v1 (output_preview)


def output_preview(reader: Reader, workflow_id: str, task_id: str) -> dict[str, Any]:
    """What a task's checkpoint holds: type, size and a truncated repr.

    The checkpoint's bytes are read (the storage API has no size call) but a value whose
    pickle is over :data:`PREVIEW_MAX_BYTES` is not unpickled, and a value that fails
    signature verification is never unpickled: the preview says so.
    """
    store = reader.store
    current = task_id
    for _ in range(10_000):
        key = _OUTPUT_KEY.format(wid=workflow_id, tid=current)
        raw = store.storage.get(key)
        if raw is None:
            return {"available": False, "note": "no checkpoint"}
        what = f"output of task {current!r}"
        try:
            header, payload = store.serializer.unwrap(raw, what=what, key=key)
        except Exception as err:
            return {
                "available": False,
                "size": len(raw),
                "note": f"not shown: {type(err).__name__}: {err}",
            }
        if "forward" in header:
            current = str(header["forward"])
            continue
        size = len(payload)
        if size > PREVIEW_MAX_BYTES:
            return {
                "available": False,
                "size": size,
                "note": f"not unpickled: {size:,} bytes is over the preview limit",
            }
        try:
            value = store.serializer.loads(raw, what=what, key=key)
        except Exception as err:
            return {
                "available": False,
                "size": size,
                "note": f"cannot be loaded here: {type(err).__name__}: {err}",
            }
        return {"available": True, "size": size, **preview(value, size)}
    return {"available": False, "note": "continuation chain too long"}


FULL_REPR_BYTES = 64 * 1024
"""Values whose pickle is at most this big get a plain ``repr`` (then cut); bigger ones a
``reprlib`` one that never builds the whole text."""


def preview(value: Any, size: int) -> dict[str, Any]:
    """``{"type", "repr", "truncated"}`` of a value, its repr cut at PREVIEW_CHARS.

    Args:
        value: the value.
        size: the size of its pickle, in bytes.
    """
    try:
        if size <= FULL_REPR_BYTES:
            text = repr(value)
            truncated = len(text) > PREVIEW_CHARS
            text = text[:PREVIEW_CHARS]
        else:
            shorten = reprlib.Repr()
            shorten.maxstring = shorten.maxother = PREVIEW_CHARS
            shorten.maxlist = shorten.maxtuple = shorten.maxset = shorten.maxdict = 50
            shorten.maxlevel = 4
            text = shorten.repr(value)[:PREVIEW_CHARS]
            truncated = True  # the value is bigger than any preview of it
    except Exception as err:
        text, truncated = f"<repr failed: {type(err).__name__}: {err}>", False
    kind = type(value)
    return {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "repr": text + ("…" if truncated else ""),
        "truncated": truncated,
    }
