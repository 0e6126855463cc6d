"""What the scenarios run on: a storage backend, its durability mode, and an executor.

Add a backend or an executor by appending a :class:`Config` to :data:`CONFIGS` with a
:class:`Backend` that hands out fresh storage URLs. A config whose module is not importable
(or whose server cannot start) is skipped with a printed note.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# What a checkpoint survives once durableflow says it is written.
DURABILITY = {
    "none": "lost with the process (memory)",
    "process": "survives a killed process, not a power cut (no fsync)",
    "power": "survives a power cut (fsync)",
}


class Backend:
    """Hands out fresh, empty storages of one kind."""

    sync_before_timing = False
    """Flush the file system before each timed run (file-backed storages)."""

    def url(self, name: str) -> str:
        """The URL of a new, empty storage called ``name`` in the configured durability mode."""
        raise NotImplementedError

    def bulk_url(self, name: str) -> str:
        """The same storage as :meth:`url` opened in its fastest mode (to build big stores)."""
        return self.url(name)

    def remove(self, name: str) -> None:
        """Forget the storage ``name`` (free its disk space)."""

    def close(self) -> None:
        """Stop servers, remove files."""


class MemoryBackend(Backend):
    def url(self, name: str) -> str:
        return "memory://"  # a new store per open: scenarios keep the instance they opened


class FileBackend(Backend):
    sync_before_timing = True

    def __init__(self, workdir: Path, fsync: bool) -> None:
        self.root = workdir / f"file-{'fsync' if fsync else 'nofsync'}"
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync

    def url(self, name: str) -> str:
        return f"file://{self.root / name}" + ("" if self.fsync else "?fsync=false")

    def bulk_url(self, name: str) -> str:
        return f"file://{self.root / name}?fsync=false"

    def remove(self, name: str) -> None:
        # Renamed away now, deleted at the end: removing 100,000 workflows takes a minute.
        trash = self.root / ".trash"
        trash.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.root / name, trash / f"{name}-{uuid.uuid4().hex[:8]}")

    def close(self) -> None:
        remove_later(self.root)


def remove_later(path: Path) -> None:
    """Delete ``path`` in a detached process: the run does not wait for it."""
    if path.exists():
        subprocess.Popen(
            ["rm", "-rf", str(path)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


class SQLiteBackend(FileBackend):
    def __init__(self, workdir: Path, fsync: bool) -> None:
        super().__init__(workdir / "sqlite", fsync)

    def url(self, name: str) -> str:
        return f"sqlite://{self.root / name}.db" + ("" if self.fsync else "?fsync=false")

    def bulk_url(self, name: str) -> str:
        return f"sqlite://{self.root / name}.db?fsync=false"

    def remove(self, name: str) -> None:
        for suffix in (".db", ".db-wal", ".db-shm"):
            (self.root / f"{name}{suffix}").unlink(missing_ok=True)


class S3Backend(Backend):
    """A SeaweedFS server on 127.0.0.1 (``weed mini``), started for the run."""

    def __init__(self, workdir: Path) -> None:
        from durableflow.testing.s3server import start_seaweedfs

        self.server = start_seaweedfs(workdir=workdir / "seaweedfs")
        os.environ.update(self.server.environ())

    def url(self, name: str) -> str:
        return self.server.url(f"bench/{name}")

    def close(self) -> None:
        self.server.stop()


@dataclasses.dataclass(frozen=True)
class Config:
    """One column of the results: a storage in a durability mode, and an executor."""

    name: str
    storage: str
    durability: str
    executor: str
    make_backend: Callable[[Path], Backend]
    needs: tuple[str, ...] = ()
    """Modules that must be importable, else the config is skipped."""
    max_size: int | None = None
    """Largest size a scenario runs at here (slow backends), None for no cap."""
    max_store: int | None = None
    """Largest stored-workflow count for the management scenario."""
    max_workflows: int | None = None
    """Largest number of one-task workflows for the tiny scenario."""
    repeats: int | None = None
    """Timed runs per case here (slow backends), None for the profile's."""
    management: bool = True
    """Run the management scenario (read-only calls: one mode per storage is enough)."""
    slow: bool = False
    """Left out of ``--quick`` unless named with ``--configs`` (a server or cluster to start)."""

    def unavailable(self) -> str | None:
        """Why this config cannot run here, or None."""
        for module in self.needs:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return f"{module} is not importable (not landed or not installed)"
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "config": self.name,
            "storage": self.storage,
            "durability": self.durability,
            "executor": self.executor,
        }


CONFIGS: list[Config] = [
    Config("memory", "memory", "none", "thread", lambda _w: MemoryBackend()),
    Config(
        "memory-inline",
        "memory",
        "none",
        "inline",
        lambda _w: MemoryBackend(),
        management=False,  # a diagnostic: the engine alone, tasks run in its thread
    ),
    Config("file", "file", "power", "thread", lambda w: FileBackend(w, fsync=True)),
    Config(
        "file-nofsync",
        "file",
        "process",
        "thread",
        lambda w: FileBackend(w, fsync=False),
        management=False,  # reads are the same as "file"
    ),
    Config(
        "sqlite",
        "sqlite",
        "power",
        "thread",
        lambda w: SQLiteBackend(w, fsync=True),
        needs=("durableflow.storage.sqlite",),
    ),
    Config(
        "sqlite-nofsync",
        "sqlite",
        "process",
        "thread",
        lambda w: SQLiteBackend(w, fsync=False),
        needs=("durableflow.storage.sqlite",),
        management=False,
    ),
    Config(
        "s3-seaweedfs",
        "s3",
        "power",
        "thread",
        S3Backend,
        needs=("durableflow.storage.s3", "durableflow.testing.s3server", "boto3"),
        max_size=1_000,
        max_store=1_000,
        max_workflows=100,
        repeats=3,
        slow=True,
    ),
    Config(
        "file+ray",
        "file",
        "power",
        "ray",
        lambda w: FileBackend(w, fsync=True),
        needs=("durableflow.ray.executor", "ray"),
        max_size=1_000,
        max_workflows=100,
        repeats=3,
        management=False,  # the executor does not take part in management calls
        slow=True,
    ),
]


def by_name(names: list[str] | None) -> list[Config]:
    if not names:
        return list(CONFIGS)
    known = {c.name: c for c in CONFIGS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; known: {sorted(known)}")
    return [known[n] for n in names]
