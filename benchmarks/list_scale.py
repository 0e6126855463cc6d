"""Listings of a big store (issue 17): ``durableflow list`` (newest 50) and ``list_all()``.

Run: ``python -m benchmarks.list_scale [--sizes 10000,100000] [--backends file,sqlite]``.

Each store holds ``size`` SUCCESSFUL workflows (1% FAILED) at rest, written as the status index
protocol leaves them (``WorkflowStore.set_status``): the run record (a copy of a real one, made
by ``Client.run``, under another id and creation time), its status index entry and, when this
version has one, its creation index entry (``layout.created_key``). Creation times are a
random permutation of the ids, so id order says nothing about age. The store is written with
``put_many`` on the storage opened with ``fsync=false``, then read through a fresh ``Reader``
(warm page cache: the store was just written). Timings are medians of ``--repeats`` calls;
``durableflow list`` is also timed as a process (its Python start included), once.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from durableflow import Client, workflow
from durableflow.model.status import WorkflowStatus
from durableflow.runtime.reader import Reader
from durableflow.storage import layout
from durableflow.storage.urls import open_storage

_BASE = 1_700_000_000.0


@workflow.task
def _one() -> int:
    return 1


def _wid(i: int) -> str:
    return f"wf-{i:07d}"


def build(url: str, size: int) -> float:
    """Fill the storage at ``url`` with ``size`` finished workflows; seconds taken."""
    start = time.perf_counter()
    with Client(url) as client:
        client.run(_one.bind(), workflow_id="template")
        template = client.store.read_run("template")
        client.delete("template")
    assert template is not None
    created = list(range(size))
    random.Random(17).shuffle(created)
    storage = open_storage(url + "?fsync=false" if "?" not in url else url)
    with_created = hasattr(layout, "created_key")

    def write(chunk: range) -> None:
        items: list[tuple[str, bytes]] = []
        for i in chunk:
            status = WorkflowStatus.FAILED if i % 100 == 0 else WorkflowStatus.SUCCESSFUL
            record = template.replace(
                workflow_id=_wid(i), status=status, created_at=_BASE + created[i]
            )
            items.append((layout.run_key(record.workflow_id), record.to_bytes()))
            items.append((layout.index_key(status.value, record.workflow_id), b""))
            if with_created:
                key = layout.created_key(record.created_at, record.workflow_id)
                if key is not None:
                    items.append((key, b""))
        storage.put_many(items)

    chunks = [range(i, min(i + 500, size)) for i in range(0, size, 500)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, chunks))
    storage.close()
    return time.perf_counter() - start


def _median(call: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    samples = []
    result = None
    for _ in range(repeats):
        begin = time.perf_counter()
        result = call()
        samples.append(time.perf_counter() - begin)
    return statistics.median(samples), result


def measure(url: str, size: int, repeats: int) -> dict[str, float]:
    """Seconds of each listing on the store at ``url`` (which holds ``size`` workflows)."""
    out: dict[str, float] = {}
    with Reader(url) as reader:
        out["list_all()"], rows = _median(reader.list_all, repeats)
        assert len(rows) == size
        out["newest 50"], (page, _) = _median(
            lambda: reader.list_workflows(limit=50, newest_first=True), repeats
        )
        assert [r.created_at for r in page] == [_BASE + size - 1 - k for k in range(50)]
    begin = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "durableflow", "--storage", url, "list"],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "DURABLEFLOW_STORAGE": url},
    )
    out["durableflow list (process)"] = time.perf_counter() - begin
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--backends", default="file,sqlite")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", help="a directory to build the stores in and keep them")
    args = parser.parse_args(argv)
    root = Path(args.keep or tempfile.mkdtemp(prefix="df-list-scale-"))
    try:
        for backend in args.backends.split(","):
            for size in (int(s) for s in args.sizes.split(",")):
                where = root / f"{backend}-{size}"
                url = f"sqlite://{where}.db" if backend == "sqlite" else f"file://{where}"
                if not (where.exists() or Path(f"{where}.db").exists()):
                    built = build(url, size)
                    print(f"{backend} {size:,}: built in {built:.1f} s", flush=True)
                for label, seconds in measure(url, size, args.repeats).items():
                    print(f"{backend} {size:,}: {label}: {seconds * 1000:,.0f} ms", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
