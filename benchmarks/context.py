"""Profiles (sizes and repeats), the context a scenario runs in, and the result record."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.configs import Backend, Config, FileBackend, S3Backend, SQLiteBackend
from benchmarks.harness import (
    CountingStorage,
    InlineExecutor,
    Measurement,
    median,
    percentile,
)
from durableflow import Client
from durableflow.storage.base import Storage
from durableflow.storage.urls import open_storage


@dataclasses.dataclass(frozen=True)
class Profile:
    """Sizes and repeats of one kind of run."""

    name: str
    chain: tuple[int, ...]
    fanout: tuple[int, ...]
    tiny: tuple[int, ...]
    stores: tuple[int, ...]
    resume: tuple[int, ...]
    payload_bytes: int
    payload_lengths: tuple[int, ...]
    repeats: int
    """Timed runs per case."""
    repeats_large: int
    """Timed runs per case at sizes of 10,000 and more."""
    calls: int
    """Timed calls of get_status / get_metadata per store."""
    tiny_threads: int = 8


PROFILES = {
    "full": Profile(
        "full",
        chain=(100, 1_000, 10_000),
        fanout=(100, 1_000, 10_000),
        tiny=(100, 1_000),
        stores=(1_000, 10_000, 100_000),
        resume=(100, 1_000, 10_000),
        payload_bytes=10 * 1024 * 1024,
        payload_lengths=(4, 16),
        repeats=5,
        repeats_large=3,
        calls=200,
    ),
    "quick": Profile(
        "quick",
        chain=(50, 500),
        fanout=(50, 500),
        tiny=(50, 200),
        stores=(200, 2_000),
        resume=(50, 500),
        payload_bytes=1024 * 1024,
        payload_lengths=(2, 8),
        repeats=3,
        repeats_large=3,
        calls=50,
    ),
    "smoke": Profile(
        "smoke",
        chain=(3, 6),
        fanout=(3, 6),
        tiny=(3, 6),
        stores=(10, 20),
        resume=(3, 6),
        payload_bytes=64 * 1024,
        payload_lengths=(2, 3),
        repeats=2,
        repeats_large=2,
        calls=5,
        tiny_threads=2,
    ),
}


@dataclasses.dataclass
class Result:
    """One row: one scenario variant, on one config, at one size."""

    scenario: str
    variant: str
    config: str
    storage: str
    durability: str
    executor: str
    size: int
    size_unit: str
    """What ``size`` counts: tasks, workflows, stored workflows..."""
    sample_unit: str
    """What one sample times: a whole run, one workflow, one call."""
    samples: int
    median_s: float
    p95_s: float
    per_unit_s: float
    """Cost of one ``per_unit`` (a task, a workflow, a call...), in seconds."""
    per_unit: str
    rate: float | None = None
    rate_unit: str | None = None
    peak_rss_mb: float | None = None
    """Peak resident memory of the driver process during the timed runs."""
    peak_rss_delta_mb: float | None = None
    """Peak minus the resident memory just before the runs."""
    bytes_written: float | None = None
    """Bytes written to storage per sample (median)."""
    storage_writes: float | None = None
    fsyncs: float | None = None
    """fsync calls of the driver per sample (median; file storage only)."""
    baselines: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    """name -> {"median_s", "per_unit_s"}: the same work without durableflow."""
    baseline: str | None = None
    """The baseline the table shows next to the figure."""
    ratio: float | None = None
    """per_unit_s / the shown baseline's per_unit_s."""
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Context:
    """What a scenario needs: the config, fresh storages, sizes, a log."""

    def __init__(
        self,
        config: Config,
        backend: Backend,
        profile: Profile,
        workdir: Path,
        log: Callable[[str], None],
    ) -> None:
        self.config = config
        self.backend = backend
        self.profile = profile
        self.workdir = workdir
        self.log = log
        self.ray = config.executor == "ray"
        self._clients: list[Client] = []
        self._storages: list[Storage] = []

    def sizes(self, sizes: tuple[int, ...], cap: int | None = None) -> list[int]:
        """The sizes up to ``cap`` (default: the config's ``max_size``), two at least.

        When the cap leaves one size, a tenth of it comes first, so that growth is visible.
        """
        cap = cap if cap is not None else self.config.max_size
        kept = [s for s in sizes if cap is None or s <= cap]
        if len(kept) >= 2:
            return kept
        top = kept[0] if kept else min(cap or min(sizes), min(sizes))
        return [max(1, top // 10), top] if top > 1 else [top]

    def repeats(self, size: int) -> int:
        if self.config.repeats is not None:
            return self.config.repeats
        return self.profile.repeats_large if size >= 10_000 else self.profile.repeats

    def open(self, name: str, *, bulk: bool = False) -> Storage:
        url = self.backend.bulk_url(name) if bulk else self.backend.url(name)
        storage = open_storage(url)
        self._storages.append(storage)
        return storage

    def client(self, storage: Storage, *, close_storage: bool = True) -> Client:
        """A Client of ``storage``; ``close_storage=False``: closing the Client leaves it open."""
        if not close_storage:
            storage = CountingStorage(storage, close_inner=False)
        executor: Any = self.config.executor
        if executor == "inline":
            executor = InlineExecutor()
        client = Client(storage, executor=executor)
        self._clients.append(client)
        return client

    def counted_client(self, name: str) -> tuple[CountingStorage, Client]:
        storage = CountingStorage(self.open(name))
        return storage, self.client(storage)

    def close_client(self, client: Client) -> None:
        client.close()
        if client in self._clients:
            self._clients.remove(client)

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        for storage in self._storages:
            storage.close()
        self._storages.clear()

    @property
    def sync(self) -> bool:
        return self.backend.sync_before_timing

    # --- result ------------------------------------------------------------------------------
    def result(
        self,
        scenario: str,
        variant: str,
        size: int,
        size_unit: str,
        m: Measurement,
        *,
        sample_unit: str,
        items: float,
        per_unit: str,
        rate_count: float | None = None,
        rate_unit: str | None = None,
        baselines: dict[str, float] | None = None,
        baseline: str | None = None,
        total_s: float | None = None,
        notes: list[str] | None = None,
        measured: bool = True,
    ) -> Result:
        """Build a row.

        ``items`` is how many ``per_unit`` one sample covers; ``total_s`` overrides the time the
        per-unit cost is computed from (throughput runs: the wall time of the batch);
        ``rate_count`` / that time is the row's rate (tasks/s, workflows/s, MB/s).
        ``baselines`` are seconds for the same ``items`` of work.
        """
        med = median(m.samples)
        basis = total_s if total_s is not None else med
        per = basis / items
        row = Result(
            scenario=scenario,
            variant=variant,
            size=size,
            size_unit=size_unit,
            sample_unit=sample_unit,
            samples=len(m.samples),
            median_s=med,
            p95_s=percentile(m.samples, 95),
            per_unit_s=per,
            per_unit=per_unit,
            rate=rate_count / basis if rate_count is not None else None,
            rate_unit=rate_unit,
            peak_rss_mb=round(m.peak_rss / 2**20, 1) if measured and m.peak_rss else None,
            peak_rss_delta_mb=(
                round((m.peak_rss - m.rss_before) / 2**20, 1) if measured and m.peak_rss else None
            ),
            bytes_written=m.bytes_written if measured else None,
            storage_writes=m.writes if measured else None,
            fsyncs=m.fsyncs if self.config.storage == "file" else None,
            notes=list(notes or []),
            **self.config.describe(),
        )
        for name, seconds in (baselines or {}).items():
            if seconds is None:
                continue
            row.baselines[name] = {"median_s": seconds, "per_unit_s": seconds / items}
        shown = baseline if baseline in row.baselines else next(iter(row.baselines), None)
        if shown is not None:
            row.baseline = shown
            base = row.baselines[shown]["per_unit_s"]
            row.ratio = per / base if base > 0 else None
        self.log(_describe(row))
        return row

    # --- raw storage baselines ---------------------------------------------------------------
    def raw_writes(self, count: int, size: int, threads: int = 1) -> float | None:
        """Seconds to make ``count`` independent writes of ``size`` bytes straight to the
        backend, in the same durability mode, without durableflow (None: no such baseline)."""
        backend = self.backend
        if count <= 0:
            return None
        if isinstance(backend, SQLiteBackend):
            return _raw_sqlite(backend, count, size, threads)
        if isinstance(backend, FileBackend):
            return _raw_files(
                backend.root / f"raw-{uuid.uuid4().hex[:8]}", backend.fsync, count, size, threads
            )
        if isinstance(backend, S3Backend):
            return _raw_s3(backend, count, size, threads)
        return None


def _describe(row: Result) -> str:
    text = (
        f"[{row.config}] {row.scenario}/{row.variant} {row.size:,} {row.size_unit}: "
        f"median {fmt_seconds(row.median_s)} per {row.sample_unit}, "
        f"{fmt_seconds(row.per_unit_s)}/{row.per_unit}"
    )
    if row.rate is not None:
        text += f", {row.rate:,.1f} {row.rate_unit}"
    if row.ratio is not None:
        text += f", {row.ratio:,.1f}x {row.baseline}"
    if row.peak_rss_mb is not None:
        text += f", peak {row.peak_rss_mb:,.0f} MB"
    return text


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e9:.0f} ns"


def _spread(count: int, threads: int, work: Callable[[range], None]) -> float:
    """Run ``work`` over ``count`` items split between ``threads``; the wall time."""
    start = time.perf_counter()
    if threads <= 1:
        work(range(count))
    else:
        chunks = [range(t, count, threads) for t in range(threads)]
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, chunks))
    return time.perf_counter() - start


def _raw_files(directory: Path, fsync: bool, count: int, size: int, threads: int) -> float:
    """Atomic file writes done by hand: temporary file, [fsync], rename, [fsync the folder]."""
    directory.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)

    def work(items: range) -> None:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in items:
                tmp = directory / f".tmp-{i}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    if fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, directory / f"value-{i}")
                if fsync:
                    os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    os.sync()
    try:
        return _spread(count, threads, work)
    finally:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)


def _raw_sqlite(backend: SQLiteBackend, count: int, size: int, threads: int) -> float:
    """One committed INSERT per value, WAL, synchronous FULL (fsync) or NORMAL."""
    path = backend.root / f"raw-{uuid.uuid4().hex[:8]}.db"
    data = os.urandom(size)
    sync = "FULL" if backend.fsync else "NORMAL"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)")
    setup.commit()
    setup.close()

    def work(items: range) -> None:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute(f"PRAGMA synchronous={sync}")
        for i in items:
            conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"value-{i}", data))
        conn.close()

    try:
        return _spread(count, threads, work)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _raw_s3(backend: S3Backend, count: int, size: int, threads: int) -> float:
    """One PUT per value with boto3."""
    client = backend.server.client()
    data = os.urandom(size)
    prefix = f"raw-{uuid.uuid4().hex[:8]}"

    def work(items: range) -> None:
        for i in items:
            client.put_object(Bucket=backend.server.bucket, Key=f"{prefix}/{i}", Body=data)

    return _spread(count, threads, work)


def python_seconds(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Median seconds of a plain-Python baseline."""
    samples = []
    for _ in range(max(repeats, 3)):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return median(samples)


def eprint(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
