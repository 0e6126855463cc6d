"""Measuring tools: timings and their statistics, peak memory, storage traffic, environment."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from durableflow.executors.base import Executor
from durableflow.storage.base import Storage

# --- statistics ---------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; NaN for no values."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else math.nan


# --- memory ------------------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """Resident memory of this process now."""
    kb = _status_kb("VmRSS")
    return (kb or 0) * 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs``); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident memory since the last :func:`reset_peak_rss` (or since the start)."""
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb * 1024


# --- storage traffic ---------------------------------------------------------------------------


class CountingStorage(Storage):
    """Wraps a storage and counts what goes through it (bytes written, writes, reads).

    Values written by other processes (the Ray executor's workers reopen the storage from its
    URL) are not seen here; the scenarios add those from what is stored afterwards.
    """

    def __init__(self, inner: Storage, *, close_inner: bool = True) -> None:
        self.inner = inner
        self.close_inner = close_inner
        self._lock = threading.Lock()
        self.bytes_written = 0
        self.writes = 0
        self.reads = 0
        self.deletes = 0
        self.lists = 0

    def __getattr__(self, name: str) -> Any:
        # Optional methods a backend adds later (batching hooks, say) pass straight through.
        return getattr(self.inner, name)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "bytes_written": self.bytes_written,
                "writes": self.writes,
                "reads": self.reads,
                "deletes": self.deletes,
                "lists": self.lists,
            }

    def _wrote(self, count: int, size: int) -> None:
        with self._lock:
            self.writes += count
            self.bytes_written += size

    @property
    def url(self) -> str:
        return self.inner.url

    def get(self, key: str) -> bytes | None:
        with self._lock:
            self.reads += 1
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        self._wrote(1, len(data))

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        batch = list(items)
        self.inner.put_many(batch)
        self._wrote(len(batch), sum(len(data) for _, data in batch))

    def create(self, key: str, data: bytes) -> bool:
        created = self.inner.create(key, data)
        if created:
            self._wrote(1, len(data))
        return created

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        swapped = self.inner.swap(key, expected, data)
        if swapped:
            self._wrote(1, len(data))
        return swapped

    def delete(self, key: str) -> None:
        with self._lock:
            self.deletes += 1
        self.inner.delete(key)

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            self.lists += 1
        return self.inner.list(prefix)

    def list_children(self, folder: str) -> list[str]:
        with self._lock:
            self.lists += 1
        return self.inner.list_children(folder)

    def delete_prefix(self, prefix: str) -> None:
        self.inner.delete_prefix(prefix)

    def batch(self) -> contextlib.AbstractContextManager[None]:
        return self.inner.batch()

    def volatile(self) -> contextlib.AbstractContextManager[None]:
        return self.inner.volatile()

    def close(self) -> None:
        if self.close_inner:
            self.inner.close()


class FsyncCounter:
    """Counts ``os.fsync`` / ``os.fdatasync`` calls made by this process (file storage)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._saved: dict[str, Callable[[int], None]] = {}

    def install(self) -> None:
        for name in ("fsync", "fdatasync"):
            original = getattr(os, name, None)
            if original is None or name in self._saved:
                continue
            self._saved[name] = original

            def counted(fd: int, _original: Callable[[int], None] = original) -> None:
                with self._lock:
                    self.count += 1
                _original(fd)

            setattr(os, name, counted)

    def uninstall(self) -> None:
        for name, original in self._saved.items():
            setattr(os, name, original)
        self._saved.clear()


FSYNCS = FsyncCounter()


def settle(sync: bool) -> None:
    """Before a timed run: collect garbage, and flush the file system's dirty data.

    Without the flush, the first fsync of a timed run pays for writing whatever the untimed
    setup left in the page cache (ext4 commits the whole journal).
    """
    gc.collect()
    if sync:
        os.sync()


# --- executors ---------------------------------------------------------------------------------


class InlineExecutor(Executor):
    """Runs each call in the engine's thread, at submission: no thread handoff at all.

    A diagnostic, not a product executor (a running task would delay cancels): the difference
    between the ``memory`` and ``memory-inline`` configs is the cost of handing each task to a
    pool thread and its outcome back, which depends on how fast the machine wakes a thread.
    """

    name = "inline"
    shares_memory = True

    def submit(
        self, fn: Callable[[Any], Any], call: Any, options: Mapping[str, Any]
    ) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(call))
        except BaseException as err:
            future.set_exception(err)
        return future


# --- timing ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Measurement:
    """Timings of repeated runs of one case and what they cost besides time."""

    samples: list[float]
    """Seconds per run (or per operation, see the scenario's ``unit``)."""
    peak_rss: int = 0
    """Peak resident memory of this process during the runs (bytes)."""
    rss_before: int = 0
    """Resident memory just before the runs (bytes)."""
    bytes_written: float = 0.0
    """Bytes written to storage per run (median)."""
    writes: float = 0.0
    """Storage write operations per run (median)."""
    fsyncs: float = 0.0
    """fsync calls of this process per run (median)."""


def measure(
    run: Callable[[Any], None],
    *,
    repeats: int,
    setup: Callable[[int], Any] | None = None,
    storage: CountingStorage | None = None,
    sync: bool = False,
    extra_bytes: Callable[[Any], int] | None = None,
) -> Measurement:
    """Time ``run(setup(i))`` ``repeats`` times; setup is not timed.

    ``extra_bytes(state)`` adds bytes written outside this process (Ray workers).
    """
    samples: list[float] = []
    written: list[float] = []
    writes: list[float] = []
    fsyncs: list[float] = []
    peak = 0
    before = rss_bytes()
    for i in range(repeats):
        state = setup(i) if setup is not None else None
        settle(sync)
        counters = storage.counters() if storage is not None else None
        fsync_before = FSYNCS.count
        reset_peak_rss()
        start = time.perf_counter()
        run(state)
        samples.append(time.perf_counter() - start)
        peak = max(peak, peak_rss_bytes())
        fsyncs.append(FSYNCS.count - fsync_before)
        if storage is not None and counters is not None:
            after = storage.counters()
            extra = extra_bytes(state) if extra_bytes is not None else 0
            written.append(after["bytes_written"] - counters["bytes_written"] + extra)
            writes.append(after["writes"] - counters["writes"])
    return Measurement(
        samples=samples,
        peak_rss=peak,
        rss_before=before,
        bytes_written=median(written) if written else 0.0,
        writes=median(writes) if writes else 0.0,
        fsyncs=median(fsyncs),
    )


def time_each(calls: Iterable[Callable[[], Any]]) -> list[float]:
    """Seconds of each call, one after another."""
    samples = []
    for call in calls:
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


# --- environment -------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _filesystem(path: Path) -> str:
    """Type and device of the file system holding ``path`` (from /proc/mounts)."""
    best = ("", "?", "?")
    try:
        resolved = str(path.resolve())
        with open("/proc/mounts") as handle:
            for line in handle:
                device, mount, kind = line.split()[:3]
                inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best[0]):
                    best = (mount, kind, device)
    except OSError:
        return "?"
    return f"{best[1]} on {best[2]}"


def git_commit(repo: Path) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def fsync_probe(directory: Path, count: int = 60) -> dict[str, float]:
    """Latency of one durable small-file write here (write, fsync, rename, fsync the folder)."""
    directory.mkdir(parents=True, exist_ok=True)
    samples = []
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(count):
            tmp = directory / f".probe-{uuid.uuid4().hex}"
            start = time.perf_counter()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"x" * 200)
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, directory / f"probe-{i}")
            os.fsync(dir_fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(dir_fd)
    for i in range(count):
        (directory / f"probe-{i}").unlink(missing_ok=True)
    return {
        "p50_ms": round(median(samples) * 1e3, 3),
        "p95_ms": round(percentile(samples, 95) * 1e3, 3),
    }


def environment(repo: Path, workdir: Path) -> dict[str, Any]:
    """What the figures depend on: machine, software, load, and the disk's fsync latency."""
    import durableflow

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(repo),
        "durableflow": durableflow.__version__,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": _mem_total_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "workdir": str(workdir),
        "filesystem": _filesystem(workdir),
        "durable_write": fsync_probe(workdir / "fsync-probe"),
    }


@contextmanager
def quiet_logging() -> Iterator[None]:
    """durableflow logs a line per started storage; the benchmarks print their own."""
    import logging

    logger = logging.getLogger("durableflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
