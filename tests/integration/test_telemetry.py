"""OpenTelemetry: a span per run (resumes linked), a child span per attempt wherever it runs,
metrics by outcome, the trace ids stored with the workflow; nothing imported without it.

Spans are read with the SDK's in-memory exporter, metrics with its in-memory reader; one test
exports over OTLP/HTTP, from a separate worker process, to a receiver on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from durableflow import Client, WorkflowExecutionError, WorkflowStatus, telemetry, workflow
from durableflow.model.calls import OutcomeKind, TaskCall, TaskOutcome
from durableflow.runtime.context import task_context


@workflow.task
def noop() -> int:
    return 1


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    c = Client(str(tmp_path / "store"))
    yield c
    c.close(wait=False)


class Tracing:
    """Providers of this test only, handed to ``telemetry.configure``."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        """The data points of one metric: sorted attributes -> value (or histogram count)."""
        found: dict[tuple[tuple[str, Any], ...], Any] = {}
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", None)
                            found[tuple(sorted(point.attributes.items()))] = (
                                value if value is not None else point.count
                            )
        return found


@pytest.fixture
def stored(client: Client) -> str:
    """Workflow "w", run before tracing starts (its own run would be traced otherwise)."""
    client.run(noop.bind(), workflow_id="w")
    return "w"


@pytest.fixture
def tracing(stored: str) -> Iterator[Tracing]:
    t = Tracing()
    telemetry.configure(tracer_provider=t.tracer_provider, meter_provider=t.meter_provider)
    yield t
    telemetry.configure()


def attempt_call(client: Client, workflow_id: str, task_id: str, attempt: int = 1) -> TaskCall:
    """An attempt's call as the engine builds it, its trace context included."""
    call = TaskCall(
        workflow_id, task_id, attempt, noop, (), {}, {}, True, False, store=client.store
    )
    call.trace_context = telemetry.attempt_submitted(workflow_id, task_id, attempt)  # type: ignore[attr-defined]
    return call


def test_without_opentelemetry_nothing_is_imported(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from durableflow import Client, workflow\n"
        "@workflow.task\n"
        "def one(): return 1\n"
        f"with Client({str(tmp_path / 'store')!r}) as c:\n"
        "    assert c.run(one.bind(), workflow_id='w') == 1\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_a_run_span_parents_its_attempts_spans_in_threads(client: Client, tracing: Tracing) -> None:
    record = client.store.read_run("w")
    run = telemetry.start_run(client.store, record, "thread")
    assert run is not None

    def attempt(task_id: str, n: int, fail: bool) -> None:
        call = attempt_call(client, "w", task_id, n)
        try:
            with task_context("w", task_id, call=call):
                if fail:
                    raise ValueError(f"{task_id} failed")
        except ValueError:
            pass

    threads = [
        threading.Thread(target=attempt, args=("a", 1, False)),
        threading.Thread(target=attempt, args=("b", 1, True)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    attempt("b", 2, False)  # the retry
    try:
        raise WorkflowExecutionError("b failed", workflow_id="w")
    except WorkflowExecutionError:
        telemetry.end_run(run, record.replace(status=WorkflowStatus.FAILED))
    spans = tracing.finished()
    (root,) = [s for s in spans if s.name == "durableflow.run"]
    attempts = [s for s in spans if s.name == "task noop"]
    assert len(attempts) == 3
    for span in attempts:
        assert span.parent is not None and span.parent.span_id == root.context.span_id
        assert span.context.trace_id == root.context.trace_id
        assert span.attributes["durableflow.workflow_id"] == "w"
        assert span.attributes["durableflow.executor"] == "thread"
    by_key = {
        (s.attributes["durableflow.task_id"], s.attributes["durableflow.attempt"]): s
        for s in attempts
    }
    failed = by_key[("b", 1)]
    assert failed.attributes["durableflow.outcome"] == "error"
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]
    assert failed.events[0].attributes["exception.message"] == "b failed"
    retried = by_key[("b", 2)]
    assert retried.attributes["durableflow.outcome"] == "ok"
    assert [e.name for e in retried.events] == ["durableflow.retry"]
    assert [e.name for e in root.events] == ["durableflow.task.retry", "exception"]
    assert root.attributes["durableflow.status"] == "FAILED"
    assert root.status.status_code is StatusCode.ERROR
    assert tracing.points("durableflow.task.attempts.started") == {(("executor", "thread"),): 3}


def test_each_run_stores_its_trace_and_a_resume_links_the_run_before(
    client: Client, tracing: Tracing
) -> None:
    record = client.store.read_run("w")
    first = telemetry.start_run(client.store, record, "thread")
    telemetry.end_run(first, record.replace(status=WorkflowStatus.RESUMABLE))
    second = telemetry.start_run(client.store, record.replace(epoch=record.epoch + 1), "thread")
    telemetry.end_run(second, record.replace(status=WorkflowStatus.SUCCESSFUL))
    runs = telemetry.read_traces(client.storage, "w")
    assert [r["kind"] for r in runs] == ["run", "resume"]
    one, two = tracing.finished()
    assert runs[0]["trace_id"] == format(one.context.trace_id, "032x")
    assert runs[1]["span_id"] == format(two.context.span_id, "016x")
    assert two.attributes["durableflow.run.kind"] == "resume"
    (link,) = two.links
    assert link.context.span_id == one.context.span_id
    assert two.status.status_code is StatusCode.OK
    client.delete("w")  # the trace record goes with the workflow
    assert client.storage.get(telemetry.trace_key("w")) is None


def test_metrics_count_attempts_by_outcome_and_workflows_by_status(
    client: Client, tracing: Tracing
) -> None:
    record = client.store.read_run("w")
    run = telemetry.start_run(client.store, record, "process")
    for n, (kind, system) in enumerate(
        [(OutcomeKind.OK, False), (OutcomeKind.ERROR, False), (OutcomeKind.ERROR, True)]
    ):
        telemetry.attempt_done(
            "w", TaskOutcome(f"t{n}", 1, kind, system=system, start=10.0, end=10.5)
        )
    telemetry.task_event("w", "timeout", "t3", 1, TimeoutError("too slow"))
    telemetry.attempt_lost("w", "t4", 1, RuntimeError("worker died"))
    assert tracing.points("durableflow.workflows.running") == {(): 1}
    telemetry.end_run(run, record.replace(status=WorkflowStatus.CANCELED))
    finished = tracing.points("durableflow.task.attempts.finished")
    assert finished == {
        (("outcome", "ok"),): 1,
        (("outcome", "error"),): 1,
        (("outcome", "system_error"),): 1,
        (("outcome", "timeout"),): 1,
        (("outcome", "lost"),): 1,
    }
    durations = tracing.points("durableflow.task.duration")
    assert durations[(("outcome", "ok"),)] == 1
    assert tracing.points("durableflow.workflows.finished") == {(("status", "CANCELED"),): 1}
    assert tracing.points("durableflow.workflows.running") == {(): 0}
    (root,) = tracing.finished()
    assert [e.name for e in root.events] == [
        "durableflow.task.timeout",
        "durableflow.task.lost",
        "durableflow.workflow.canceled",
    ]


def test_hooks_cost_nothing_when_tracing_is_off(client: Client) -> None:
    telemetry.configure()
    client.run(noop.bind(), workflow_id="w")
    record = client.store.read_run("w")
    assert telemetry.start_run(client.store, record, "thread") is None
    assert telemetry.attempt_submitted("w", "t", 1) is None
    telemetry.end_run(None, record)
    assert client.storage.get(telemetry.trace_key("w")) is None
    with pytest.raises(TypeError, match="TracerProvider"):
        telemetry.configure(tracer_provider=object())


# --- OTLP/HTTP, from a worker process ------------------------------------------------------


class _Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP collector: keeps the body of every POST to /v1/traces."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/traces":
                    receiver.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[Any]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        found = []
        for body in self.bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource in request.resource_spans:
                service = {a.key: a.value.string_value for a in resource.resource.attributes}
                for scope in resource.scope_spans:
                    found += [(service.get("service.name"), span) for span in scope.spans]
        return found


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


_WORKER = """
import sys
from durableflow.model.calls import TaskCall
from durableflow.runtime.context import task_context
import json
call = TaskCall(sys.argv[2], "remote", 1, len, (), {}, {}, True, False, store_url=sys.argv[1])
call.trace_context = json.loads(sys.argv[3])
with task_context(call.workflow_id, call.task_id, call=call):
    print("traced in a worker process")
assert "opentelemetry.sdk.trace" in sys.modules
"""


def test_attempts_in_a_worker_process_join_the_run_trace_over_otlp_http(
    client: Client, receiver: _Receiver
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource

    provider = TracerProvider(resource=Resource.create({"service.name": "driver"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces"))
    )
    client.run(noop.bind(), workflow_id="w")  # not traced: tracing starts below
    telemetry.configure(tracer_provider=provider)
    try:
        record = client.store.read_run("w")
        run = telemetry.start_run(client.store, record, "process")
        carrier = telemetry.attempt_submitted("w", "remote", 1)
        env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
        env.pop("OTEL_SERVICE_NAME", None)
        subprocess.run(
            [sys.executable, "-c", _WORKER, client.storage.url, "w", json.dumps(carrier)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        telemetry.end_run(run, record.replace(status=WorkflowStatus.SUCCESSFUL))
    finally:
        telemetry.configure()
        provider.shutdown()
    spans = {span.name: (service, span) for service, span in receiver.spans()}
    driver, root = spans["durableflow.run"]
    worker, task = spans["task len"]
    assert (driver, worker) == ("driver", "durableflow-worker")
    assert task.trace_id == root.trace_id and task.parent_span_id == root.span_id
    attributes = {a.key: a.value for a in task.attributes}
    assert attributes["durableflow.executor"].string_value == "process"
    assert attributes["durableflow.attempt"].int_value == 1
    stored = telemetry.read_traces(client.storage, "w")
    assert stored[0]["trace_id"] == root.trace_id.hex()


# --- through the engine ----------------------------------------

_flaky_runs: dict[str, int] = {}


@workflow.task(max_retries=2, retry_exceptions=True)
def flaky(key: str) -> str:
    _flaky_runs[key] = _flaky_runs.get(key, 0) + 1
    if _flaky_runs[key] == 1:
        raise ValueError(f"{key}: first attempt fails")
    return key


@workflow.task
def collect(*parts: str) -> list[str]:
    return list(parts)


def test_span_tree_of_a_fan_out_with_a_retry(client: Client, tracing: Tracing) -> None:
    _flaky_runs.clear()
    dag = collect.bind(*[flaky.bind(f"k{i}") for i in range(3)])
    assert client.run(dag, workflow_id="fan") == ["k0", "k1", "k2"]
    spans = tracing.finished()
    (root,) = [s for s in spans if s.name == "durableflow.run"]
    attempts = [s for s in spans if s.name.startswith("task ")]
    assert len(attempts) == 3 * 2 + 1
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in attempts)
    outcomes = sorted(str(s.attributes["durableflow.outcome"]) for s in attempts)
    assert outcomes == ["error"] * 3 + ["ok"] * 4
    assert [e.name for e in root.events].count("durableflow.task.retry") == 3
    assert root.attributes["durableflow.status"] == "SUCCESSFUL"
    started = tracing.points("durableflow.task.attempts.started")
    assert sum(started.values()) == 7


@pytest.mark.skipif(
    not os.environ.get("DURABLEFLOW_SLOW"), reason="starts a local Ray (DURABLEFLOW_SLOW=1)"
)
def test_ray_workers_spans_join_the_trace_and_their_logs_are_kept(
    tmp_path: Path, receiver: _Receiver
) -> None:
    ray = pytest.importorskip("ray")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource

    from durableflow.runtime.logs import get_logs

    provider = TracerProvider(resource=Resource.create({"service.name": "driver"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces"))
    )
    telemetry.configure(tracer_provider=provider)
    path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "PYTHONPATH": path.rstrip(os.pathsep)}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    try:
        with Client(str(tmp_path / "store"), executor="ray") as c:
            _flaky_runs.clear()
            assert c.run(collect.bind(*[noisy.bind(f"k{i}") for i in range(3)]), workflow_id="r")
            logs = get_logs(c.store, "r")
    finally:
        ray.shutdown()
        telemetry.configure()
        provider.shutdown()
    spans = receiver.spans()
    (root,) = [span for service, span in spans if span.name == "durableflow.run"]
    workers = [span for service, span in spans if service == "durableflow-worker"]
    assert len(workers) == 4  # three noisy attempts and collect, each on a Ray worker
    assert all(s.trace_id == root.trace_id and s.parent_span_id == root.span_id for s in workers)
    texts = sorted(entries[0].text for entries in logs.values())
    assert texts == [f"noisy k{i}\n" for i in range(3)]


@workflow.task
def noisy(key: str) -> str:
    print(f"noisy {key}")
    return key


def test_a_successful_run_inside_an_except_block_is_not_an_error(
    client: Client, tracing: Tracing
) -> None:
    record = client.store.read_run("w")
    try:
        raise KeyError("the caller's own, handled")
    except KeyError:
        run = telemetry.start_run(client.store, record, "thread")
        telemetry.end_run(run, record.replace(status=WorkflowStatus.SUCCESSFUL))
    (root,) = tracing.finished()
    assert root.status.status_code is StatusCode.OK and not root.events


def test_metrics_without_tracing_count_every_attempt(client: Client) -> None:
    t = Tracing()
    telemetry.configure(meter_provider=t.meter_provider)
    try:
        _flaky_runs.clear()
        assert client.run(collect.bind(flaky.bind("m")), workflow_id="metered") == ["m"]
    finally:
        telemetry.configure()
    assert t.points("durableflow.task.attempts.started") == {(("executor", "thread"),): 3}
    finished = t.points("durableflow.task.attempts.finished")
    assert finished == {(("outcome", "ok"),): 2, (("outcome", "error"),): 1}
    assert t.points("durableflow.workflows.finished") == {(("status", "SUCCESSFUL"),): 1}
    assert not t.finished() and telemetry.read_traces(client.storage, "metered") == []
