"""Helpers shared by test modules (importable as ``helpers``)."""

from __future__ import annotations

import os
from pathlib import Path


def count_lines(path: Path) -> dict[str, int]:
    """How many times each line appears in a log file tasks append to."""
    counts: dict[str, int] = {}
    if not path.exists():
        return counts
    for line in path.read_text().splitlines():
        counts[line] = counts.get(line, 0) + 1
    return counts


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append a line atomically enough for counting (one write of a short line)."""
    with open(path, "a") as handle:
        handle.write(line + "\n")


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.01):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it is truthy; return its value, or fail after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def stored_keys(storage_url: str) -> list[str]:
    """Every key in a storage: what was written, on any backend."""
    from durableflow import Client

    with Client(storage_url) as client:
        return client.storage.list("")
