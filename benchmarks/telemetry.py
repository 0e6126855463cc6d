"""What OpenTelemetry tracing costs: the 1,000-task chain with tracing off and on.

    python -m benchmarks.telemetry [--length 1000] [--rounds 5] [--executor thread]

Tracing on: the SDK's TracerProvider with a BatchSpanProcessor (the production setup) over an
exporter that counts the spans and drops them (the exporter's own cost, network included, is
the collector's business), and a MeterProvider with an in-memory reader. Rounds alternate the
two modes on one file storage; each mode's figure is its median. Then the bare cost of one
traced attempt (a ``task_context`` block with its span, no storage write). It measures and
prints; it never fails on a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from durableflow import Client, telemetry, workflow
from durableflow.model.calls import TaskCall
from durableflow.runtime import logcapture
from durableflow.runtime.context import task_context


class CountingExporter(SpanExporter):
    """Counts the spans it is given, exports nothing."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


@workflow.task
def inc(x: int) -> int:
    return x + 1


def chain(length: int) -> Any:
    node = inc.bind(0)
    for _ in range(length - 1):
        node = inc.bind(node)
    return node


CPU: dict[str, list[float]] = {"off": [], "on": []}
"""CPU seconds of this process per run (the thread executor runs every task here)."""


def _run(client: Client, length: int, name: str) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    assert client.run(chain(length), workflow_id=name) == length
    if name.startswith("chain-"):
        CPU[name.split("-")[1]].append(time.process_time() - cpu)
    return time.perf_counter() - start


def _per_attempt(client: Client, n: int = 20_000) -> float:
    """Microseconds of one ``task_context`` block with its call (capture on, no output)."""
    call = TaskCall("micro", "t", 1, inc, (), {}, {}, True, False, store=client.store)
    start = time.perf_counter()
    for _ in range(n):
        with task_context("micro", "t", call=call):
            pass
    return (time.perf_counter() - start) / n * 1e6


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--executor", default="thread")
    args = parser.parse_args(argv)
    exporter = CountingExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    logcapture.configure(mode="tee")
    times: dict[str, list[float]] = {"off": [], "on": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Client(os.path.join(tmp, "store"), executor=args.executor) as client,
    ):
        _run(client, 50, "warm-up")
        client.run(inc.bind(0), workflow_id="micro")
        for n in range(args.rounds):
            for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                if mode == "on":
                    telemetry.configure(
                        tracer_provider=tracer_provider, meter_provider=meter_provider
                    )
                else:
                    telemetry.configure()
                times[mode].append(_run(client, args.length, f"chain-{mode}-{n}"))
        telemetry.configure()
        untraced = _per_attempt(client)
        telemetry.configure(tracer_provider=tracer_provider, meter_provider=meter_provider)
        traced = _per_attempt(client)
        telemetry.configure()
    tracer_provider.force_flush()
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(
        f"chain of {args.length} tasks, {args.executor} executor, file storage, median of "
        f"{args.rounds} rounds (load {os.getloadavg()[0]:.2f})"
    )
    print(f"tracing off  {off:.3f} s  {off / args.length * 1e3:.3f} ms/task")
    print(
        f"tracing on   {on:.3f} s  {on / args.length * 1e3:.3f} ms/task  "
        f"{(on / off - 1) * 100:+.1f}%"
    )
    cpu_off, cpu_on = statistics.median(CPU["off"]), statistics.median(CPU["on"])
    per_task = (cpu_on - cpu_off) / args.length * 1e6
    print(
        f"CPU of this process: off {cpu_off:.3f} s, on {cpu_on:.3f} s "
        f"({(cpu_on / cpu_off - 1) * 100:+.1f}%, {per_task:+.0f} us/task)"
    )
    print(f"spans exported: {exporter.count} (one per run and per attempt, warm-up excluded)")
    print(
        f"one task_context block: {untraced:.1f} us untraced, {traced:.1f} us with its span "
        f"(+{traced - untraced:.1f} us)"
    )
    tracer_provider.shutdown()


if __name__ == "__main__":
    main()
