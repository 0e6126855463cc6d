"""Scenarios over stored workflows: management calls on a big store, resume (issue 6: 4, 5)."""

from __future__ import annotations

import contextlib
import functools
import random
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks import tasks
from benchmarks.context import Context, Result, python_seconds
from benchmarks.harness import (
    CountingStorage,
    Measurement,
    measure,
    median,
    settle,
    time_each,
)
from durableflow import WorkflowExecutionError, WorkflowStatus
from durableflow.storage import layout
from durableflow.storage.base import Storage
from durableflow.storage.store import WorkflowStore

REAL_WORKFLOWS = 20
"""Workflows of a big store run for real through a Client; the rest are written as records."""


def _wid(i: int) -> str:
    return f"wf-{i:07d}"


def build_store(ctx: Context, bulk: Storage, size: int) -> tuple[float, str]:
    """Fill a store with ``size`` finished workflows, 1% of them FAILED.

    The first :data:`REAL_WORKFLOWS` run through the public Client (so they have specs and
    outputs, and their run records are real ones). The others are written as the status index
    protocol (``WorkflowStore.set_status``) leaves a finished workflow at rest: its run record
    (a copy of a real one under another id) and its index entry, with ``Storage.put_many`` from
    8 threads, on the storage opened in its fastest mode. Returns (seconds, how).
    """
    start = time.perf_counter()
    client = ctx.client(bulk, close_storage=False)
    real = min(REAL_WORKFLOWS, size)
    for i in range(real):
        if i % 100 == 0:
            marker = ctx.workdir / "markers" / f"store-{i}"
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            with contextlib.suppress(WorkflowExecutionError):
                client.run(tasks.fail_if.bind(i, str(marker)), workflow_id=_wid(i))
            marker.unlink()
        else:
            client.run(tasks.one.bind(i), workflow_id=_wid(i))
    ctx.close_client(client)
    store = WorkflowStore(bulk)
    templates = {False: store.read_run(_wid(min(1, real - 1))), True: store.read_run(_wid(0))}

    def write(chunk: range) -> None:
        items = []
        for i in chunk:
            failed = i % 100 == 0
            template = templates[failed]
            assert template is not None
            record = template.replace(workflow_id=_wid(i))
            items.append((layout.run_key(record.workflow_id), record.to_bytes()))
            items.append((layout.index_key(record.status.value, record.workflow_id), b""))
        bulk.put_many(items)

    chunks = [range(i, min(i + 500, size)) for i in range(real, size, 500)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, chunks))
    how = (
        f"{real} workflows run through Client.run; {size - real:,} written at rest (run record "
        "copied from a real one, index entry) with Storage.put_many, in the fastest mode"
    )
    return time.perf_counter() - start, how


def management(ctx: Context) -> list[Result]:
    """4. list_all(), list_all(FAILED), get_status(id), get_metadata(id) on a big store."""
    if not ctx.config.management:
        return []
    results: list[Result] = []
    for size in ctx.sizes(ctx.profile.stores, cap=ctx.config.max_store):
        results.extend(_management_at(ctx, size, random.Random(6)))
    return results


def _management_at(ctx: Context, size: int, rng: random.Random) -> list[Result]:
    name = f"store-{size}"
    bulk = ctx.open(name, bulk=True)
    built, how = build_store(ctx, bulk, size)
    ctx.log(f"[{ctx.config.name}] built a store of {size:,} workflows in {built:.1f} s")
    same = ctx.backend.bulk_url(name) == ctx.backend.url(name)
    storage = CountingStorage(bulk if same else ctx.open(name), close_inner=False)
    client = ctx.client(storage)
    settle(ctx.sync)
    failed = sum(1 for i in range(size) if i % 100 == 0)
    assert len(client.list_all()) == size
    assert len(client.list_all(WorkflowStatus.FAILED)) == failed
    ids = [_wid(rng.randrange(size)) for _ in range(ctx.profile.calls)]
    index_prefixes = [layout.index_prefix(s.value) for s in WorkflowStatus]
    index_prefixes.append(layout.dirty_prefix())
    raw = storage.inner
    failed_prefixes = [layout.index_prefix("FAILED"), layout.dirty_prefix()]
    listings: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("list_all()", client.list_all, lambda: [raw.list(p) for p in index_prefixes]),
        (
            "list_all(FAILED)",
            lambda: client.list_all(WorkflowStatus.FAILED),
            lambda: [raw.list(p) for p in failed_prefixes],
        ),
    ]
    notes = [f"store: {how}", "reads are warm (the store was just written)"]
    results = []
    repeats = ctx.config.repeats or ctx.profile.repeats
    for label, call, base in listings:
        results.append(
            ctx.result(
                "management",
                label,
                size,
                "stored workflows",
                Measurement(samples=time_each([call] * repeats)),
                sample_unit="call",
                items=1,
                per_unit="call",
                baselines={"storage.list of the index": python_seconds(base, repeats)},
                notes=notes,
                measured=False,
            )
        )
    for label, fn in (
        ("get_status(id)", client.get_status),
        ("get_metadata(id)", client.get_metadata),
    ):
        samples = time_each([functools.partial(fn, wid) for wid in ids])
        base_samples = time_each([functools.partial(raw.get, layout.run_key(wid)) for wid in ids])
        results.append(
            ctx.result(
                "management",
                label,
                size,
                "stored workflows",
                Measurement(samples=samples),
                sample_unit="call",
                items=1,
                per_unit="call",
                baselines={"storage.get of the run record": median(base_samples)},
                notes=[*notes, f"{len(ids)} calls on random ids"],
                measured=False,
            )
        )
    ctx.close_client(client)
    ctx.backend.remove(name)
    return results


def _ordinal(task_id: str) -> int:
    """Position of a task in a chain of one function: ``name``, ``name_1``, ``name_2``..."""
    match = re.search(r"_(\d+)$", task_id)
    return int(match.group(1)) if match else 0


def _copy(source: Storage, target: Storage) -> int:
    keys = source.list("")
    target.put_many([(key, source.get(key) or b"") for key in keys])
    return len(keys)


def resume(ctx: Context) -> list[Result]:
    """5. A chain that failed at its last task: time from resume() to the result."""
    return [_resume_at(ctx, n) for n in ctx.sizes(ctx.profile.resume)]


def _failed_chain(ctx: Context, source: Storage, n: int, workflow_id: str) -> None:
    """Run a chain of ``n`` tasks whose last task fails: a FAILED workflow to resume."""
    marker = ctx.workdir / "markers" / f"resume-{n}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    client = ctx.client(source, close_storage=False)
    node = tasks.inc.bind(0)
    for _ in range(n - 2):
        node = tasks.inc.bind(node)
    with contextlib.suppress(WorkflowExecutionError):
        client.run(tasks.fail_if.bind(node, str(marker)), workflow_id=workflow_id)
    assert client.get_status(workflow_id) is WorkflowStatus.FAILED
    ctx.close_client(client)
    marker.unlink()


def _resume_at(ctx: Context, n: int) -> Result:
    source_name = f"resume-{n}-source"
    source = ctx.open(source_name, bulk=True)
    workflow_id = f"resume-{n}"
    _failed_chain(ctx, source, n, workflow_id)
    last_done = max(WorkflowStore(source).list_done(workflow_id), key=_ordinal)
    copies: list[str] = []
    states: list[tuple[Any, CountingStorage]] = []

    def setup(i: int) -> tuple[Any, CountingStorage]:
        copy = f"resume-{n}-{i}"
        copies.append(copy)
        same = ctx.backend.bulk_url(copy) == ctx.backend.url(copy)
        bulk = ctx.open(copy, bulk=True)
        _copy(source, bulk)
        storage = CountingStorage(bulk if same else ctx.open(copy), close_inner=False)
        states.append((ctx.client(storage), storage))
        return states[-1]

    def run(state: tuple[Any, CountingStorage]) -> None:
        assert state[0].resume(workflow_id) == n

    def raw_reads() -> None:
        source.get(layout.spec_key(workflow_id, layout.ROOT_BATCH))
        source.list(layout.outputs_prefix(workflow_id))
        source.get(layout.output_key(workflow_id, last_done))

    raw_s = python_seconds(raw_reads, ctx.profile.repeats)
    m = measure(run, repeats=ctx.repeats(n), setup=setup, sync=ctx.sync)
    m.bytes_written = median(s.counters()["bytes_written"] for _, s in states)
    m.writes = median(s.counters()["writes"] for _, s in states)
    for client, _ in states:
        ctx.close_client(client)
    for copy in copies:
        ctx.backend.remove(copy)
    ctx.backend.remove(source_name)
    return ctx.result(
        "resume",
        "failed at last task",
        n,
        "tasks",
        m,
        sample_unit="resume",
        items=n,
        per_unit="stored task",
        baselines={"raw reads": raw_s},
        notes=[
            "time of Client.resume(id) on a fresh Client: load specs and checkpoints, "
            "run the last task, write SUCCESSFUL",
            "raw reads: get the specs, list the checkpoints, get the last one",
        ],
    )
