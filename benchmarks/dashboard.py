"""Dashboard numbers (issue 13): the list on a big store, the page of a big fan-out.

``python -m benchmarks.dashboard [--workflows 100000] [--fanout 10000] [--repeat 10] [--s3]
[--keep DIR] [--profile N]``

1. A file store of ``--workflows`` workflows: 20 run through a Client (1 of them FAILED), the
   rest written at rest as ``benchmarks.stores.build_store`` does (a copy of a real run record
   with its own id and creation time, its status index entry and its creation index entry,
   with ``put_many`` in the storage's fastest mode), 1 % FAILED. The dashboard is served by
   uvicorn in a thread (:class:`~durableflow.dashboard.server.BackgroundServer`) and asked
   over HTTP by httpx: ``GET /api/workflows?limit=50`` and ``GET /workflows`` (the list page,
   HTML), first cold
   (the server's first snapshot lists the status and creation indexes, see
   :mod:`durableflow.dashboard.listing`), then warm (median of ``--repeat``), also filtered
   (``status=FAILED``) and a later page (by cursor).
2. A workflow of a ``--fanout``-task fan-out (N sources into one gather), run for real; its
   page ``GET /workflows/{id}`` and ``GET /api/workflows/{id}``, cold then warm. With
   ``--profile N``, the page's first view is also rendered in this thread under cProfile (a
   fresh dashboard, no HTTP) and the N costliest calls printed (cumulative time).

With ``--s3`` the list is measured on a local SeaweedFS S3 server instead (built fresh each
time: about 6 ms per workflow to build, 3 ms to list for the first time). Prints one line per
measure; goals: first page <= 300 ms on file storage, <= 1 s on S3, the fan-out page <= 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from benchmarks import tasks
from durableflow import Client, WorkflowExecutionError
from durableflow.dashboard.app import Settings
from durableflow.dashboard.board import Dashboard
from durableflow.dashboard.pages import Pages
from durableflow.dashboard.server import BackgroundServer
from durableflow.storage import layout
from durableflow.storage.store import WorkflowStore
from durableflow.storage.urls import open_storage
from durableflow.testing.s3server import start_seaweedfs

REAL = 20


def _wid(i: int) -> str:
    return f"wf-{i:07d}"


def build_big_store(root: Path, size: int, url: str, bulk_url: str, bare: bool = False) -> float:
    """Step 1's store at ``url`` (written through ``bulk_url``); returns the seconds it took.

    ``bare``: without the creation index entries (a store of a version before the index).
    """
    start = time.perf_counter()
    client = Client(url)
    marker = root / "marker"
    for i in range(min(REAL, size)):
        if i == 0:
            with contextlib.suppress(WorkflowExecutionError):
                client.run(
                    tasks.fail_if.bind(i, str(marker.with_name("absent"))), workflow_id=_wid(i)
                )
        else:
            client.run(tasks.one.bind(i), workflow_id=_wid(i))
    client.close()
    bulk = open_storage(bulk_url)
    store = WorkflowStore(bulk)
    ok, failed = store.read_run(_wid(1)), store.read_run(_wid(0))
    assert ok is not None and failed is not None
    base = time.time() - size  # one a second, the newest now

    def write(chunk: range) -> None:
        items = []
        for i in chunk:
            template = failed if i % 100 == 0 else ok
            record = template.replace(workflow_id=_wid(i), created_at=base + i)
            items.append((layout.run_key(record.workflow_id), record.to_bytes()))
            items.append((layout.index_key(record.status.value, record.workflow_id), b""))
            created = layout.created_key(record.created_at, record.workflow_id)
            if created is not None and not bare:  # the creation index, as a Client writes it
                items.append((created, b""))
        bulk.put_many(items)

    chunks = [range(i, min(i + 500, size)) for i in range(REAL, size, 500)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, chunks))
    bulk.close()
    return time.perf_counter() - start


def timed(call: Callable[[], httpx.Response]) -> float:
    start = time.perf_counter()
    answer = call()
    took = time.perf_counter() - start
    answer.raise_for_status()
    return took


def warm(call: Callable[[], httpx.Response], repeat: int) -> float:
    return statistics.median(timed(call) for _ in range(repeat))


def line(what: str, seconds: float, goal: float | None = None) -> None:
    verdict = (
        ""
        if goal is None
        else f"  (goal <= {goal * 1000:g} ms: {'met' if seconds <= goal else 'MISSED'})"
    )
    print(f"{what:<62} {seconds * 1000:9.1f} ms{verdict}", flush=True)


def bench_list(root: Path, size: int, repeat: int, s3: bool = False) -> None:
    if s3:
        server = start_seaweedfs(workdir=root / "seaweedfs")
        os.environ.update(server.environ())
        url = bulk_url = server.url("big")
        built = build_big_store(root, size, url, bulk_url)
        print(f"built an S3 store (SeaweedFS) of {size:,} workflows in {built:.1f} s", flush=True)
    elif (root / "big").exists():
        url = str(root / "big")
        print(f"reusing the store of {url}", flush=True)
    else:
        url = str(root / "big")
        built = build_big_store(root, size, url, f"file://{url}?fsync=false")
        print(f"built a file store of {size:,} workflows in {built:.1f} s", flush=True)
    try:
        _list_numbers(url, size, repeat, 1.0 if s3 else 0.3)
    finally:
        if s3:
            server.stop()


def _list_numbers(url: str, size: int, repeat: int, goal: float) -> None:
    fresh = BackgroundServer(Settings(storage=url, port=0, list_max_age=0.0))
    fresh.start()
    try:
        with httpx.Client(base_url=fresh.url.rstrip("/"), timeout=600) as http:
            api = lambda: http.get("/api/workflows?limit=50")  # noqa: E731
            line(f"cold: first GET /api/workflows?limit=50 ({size:,} workflows)", timed(api))
            line("every request scans the index (max_age 0): same (median)", warm(api, repeat))
    finally:
        fresh.stop()
    server = BackgroundServer(Settings(storage=url, port=0)).start()
    try:
        with httpx.Client(base_url=server.url.rstrip("/"), timeout=600) as http:
            api = lambda: http.get("/api/workflows?limit=50")  # noqa: E731
            timed(api)  # the first snapshot
            line("warm: GET /api/workflows?limit=50 (median)", warm(api, repeat), goal)
            page = lambda: http.get("/workflows")  # noqa: E731
            line("warm: GET /workflows, the list page (median)", warm(page, repeat), goal)
            failed = lambda: http.get("/api/workflows?limit=50&status=FAILED")  # noqa: E731
            line("warm: GET /api/workflows?limit=50&status=FAILED (median)", warm(failed, repeat))
            cursor = http.get("/api/workflows?limit=50").json()["next_cursor"]
            later = lambda: http.get(f"/api/workflows?limit=50&cursor={cursor}")  # noqa: E731
            line("warm: the second page, by cursor (median)", warm(later, repeat))
            home = lambda: http.get("/")  # noqa: E731
            line("warm: GET /, the home page (median)", warm(home, repeat))
    finally:
        server.stop()


def bench_fanout(root: Path, width: int, repeat: int) -> None:
    url = str(root / f"fanout-{width}")
    if not Path(url).exists():
        client = Client(url)
        start = time.perf_counter()
        dag = tasks.gather.bind(*[tasks.source.bind(i) for i in range(width)])
        client.run(dag, workflow_id="fanout")
        client.close()
        print(f"ran a {width:,}-task fan-out in {time.perf_counter() - start:.1f} s", flush=True)
    server = BackgroundServer(Settings(storage=url, port=0, warm=False)).start()
    try:
        with httpx.Client(base_url=server.url.rstrip("/"), timeout=600) as http:
            page = lambda: http.get("/workflows/fanout")  # noqa: E731
            line(f"cold: GET /workflows/fanout ({width + 1:,} tasks)", timed(page), 1.0)
            line("warm: GET /workflows/fanout (median)", warm(page, repeat), 1.0)
            live = lambda: http.get("/workflows/fanout?fragment=1")  # noqa: E731
            line("warm: its live refresh (?fragment=1, median)", warm(live, repeat), 1.0)
            api = lambda: http.get("/api/workflows/fanout")  # noqa: E731
            line("warm: GET /api/workflows/fanout (median)", warm(api, repeat))
            size = len(http.get("/workflows/fanout").content)
            print(f"{'the page weighs':<62} {size / 1024:9.1f} KiB", flush=True)
    finally:
        server.stop()


def profile_fanout(root: Path, width: int, top: int) -> None:
    """The fan-out page's first view under cProfile: the ``top`` costliest calls."""
    board = Dashboard(Settings(storage=str(root / f"fanout-{width}"), warm=False, read_only=True))
    pages = Pages(board)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    context = pages.workflow_context("fanout")
    html = board.templates.get_template("workflow.html").render(
        live_url="",
        fragment=False,
        read_only=True,
        csrf="",
        poll_ms=2000,
        storage_url="",
        statuses=[],
        request_path="",
        env=None,
        workers=None,
        **context,
    )
    profile.disable()
    line("profiled: the fan-out page's first view, in-process", time.perf_counter() - start)
    print(f"{len(html) / 1024:.0f} KiB of HTML", flush=True)
    pstats.Stats(profile).sort_stats("cumulative").print_stats(top)
    board.source.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--fanout", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--s3", action="store_true", help="list on a local SeaweedFS S3 server instead of files"
    )
    parser.add_argument(
        "--keep", default=None, help="build the stores in this directory and reuse them next time"
    )
    parser.add_argument(
        "--profile", type=int, default=0, help="profile the fan-out page: print the N top calls"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        root = (
            Path(args.keep)
            if args.keep
            else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        )
        root.mkdir(parents=True, exist_ok=True)
        if args.workflows:
            bench_list(root, args.workflows, args.repeat, args.s3)
        if args.fanout:
            bench_fanout(root, args.fanout, args.repeat)
            if args.profile:
                profile_fanout(root, args.fanout, args.profile)


if __name__ == "__main__":
    main()
