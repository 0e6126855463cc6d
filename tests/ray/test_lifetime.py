"""Workflows outlive their driver and their cluster.

Each test starts its own Ray cluster as a separate process (``ray start --head --block`` with a
private temp dir and free ports) and drives it from a separate driver process
(``lifetime_driver.py``), so killing either kills nothing of anyone else's. The cluster is
stopped by PID: its ``ray start`` process and every process below it, never ``ray stop``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from durableflow import Client, WorkflowStatus, workflow

DRIVER = Path(__file__).with_name("lifetime_driver.py")
try:  # the S3 test servers' dummy credentials, for the cluster's workers
    from durableflow.testing.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY

    S3_ENV = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
except ImportError:
    S3_ENV = {}
WORKFLOWS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Cluster:
    """A one-node Ray cluster in its own processes."""

    def __init__(self, temp_dir: Path) -> None:
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        command = [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
            f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
            f"--temp-dir={temp_dir}", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
            f"--dashboard-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
        ]  # fmt: skip
        if importlib.util.find_spec("grpc") is not None:  # a Ray client server: not on 10001
            command.append(f"--ray-client-server-port={free_port()}")
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | S3_ENV
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, "ray start exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the cluster did not come up"
                time.sleep(0.1)

    def stop(self) -> None:
        """Kill the cluster, as a crash would: SIGKILL to ``ray start`` and everything below it."""
        if self.process.poll() is not None:
            return
        tree = descendants(self.process.pid)
        self.process.kill()
        self.process.wait()
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in tree:  # gone, or a zombie nobody reaps, which counts as gone
            deadline = time.monotonic() + 30
            while _running(pid):
                assert time.monotonic() < deadline, f"process {pid} survived SIGKILL"
                time.sleep(0.01)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # Not under tmp_path: Ray's socket paths must stay short.
    temp_dir = Path(tempfile.mkdtemp(prefix="dfray-"))
    started = Cluster(temp_dir)
    yield started
    started.stop()
    shutil.rmtree(temp_dir, ignore_errors=True)


def start_driver(
    cluster: Cluster, tmp_path: Path, storage: str, *extra: str
) -> subprocess.Popen[str]:
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    errors = tmp_path / "driver.err"
    with open(errors, "w") as stderr:
        driver = subprocess.Popen(
            [sys.executable, str(DRIVER), cluster.address, storage, str(log), str(gate),
             str(WORKFLOWS), *extra],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
        )  # fmt: skip
    assert driver.stdout is not None
    line = driver.stdout.readline()
    if line.strip() != "STARTED":
        driver.wait(timeout=60)
        tail = "\n".join(errors.read_text().splitlines()[-30:])
        raise AssertionError(f"driver failed (exit {driver.returncode}):\n{tail}")
    return driver


def runs(log: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        counts[line] = counts.get(line, 0) + 1
    return counts


def wait_until(predicate, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return value


def expected(i: int) -> str:
    return f"w{i}-payload:3"


def test_a_killed_driver_does_not_stop_its_workflows(cluster, tmp_path, storage_dir):
    driver = start_driver(cluster, tmp_path, str(storage_dir))
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    wait_until(lambda: all(runs(log).get(f"start w{i} 3") for i in range(WORKFLOWS)))
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    gate.touch()  # the workflows go on only now, with their driver dead
    client = Client(str(storage_dir))
    try:
        for i in range(WORKFLOWS):
            assert client.get_output(f"w{i}", timeout=120) == expected(i)
            assert client.get_status(f"w{i}") == WorkflowStatus.SUCCESSFUL
    finally:
        client.close()
    assert all(count == 1 for count in runs(log).values())


def test_a_stopped_cluster_leaves_workflows_resumable_and_a_new_cluster_finishes_them(
    storage_url, cluster, tmp_path
):
    driver = start_driver(cluster, tmp_path, storage_url, "--exit")
    assert driver.wait(timeout=60) == 0  # the driver is gone before anything below
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    wait_until(lambda: all(runs(log).get(f"start w{i} 3") for i in range(WORKFLOWS)))
    cluster.stop()

    storage = storage_url
    client = Client(storage)
    try:
        for i in range(WORKFLOWS):
            assert client.get_status(f"w{i}") == WorkflowStatus.RESUMABLE
        assert client.list_all(WorkflowStatus.RESUMABLE) == [
            (f"w{i}", WorkflowStatus.RESUMABLE) for i in range(WORKFLOWS)
        ]
    finally:
        client.close()

    gate.touch()
    workflow.init(storage, executor="ray")  # the test session's own local Ray: a new cluster
    try:
        handles = dict(workflow.resume_all())
        assert sorted(handles) == [f"w{i}" for i in range(WORKFLOWS)]
        for i in range(WORKFLOWS):
            assert ray.get(handles[f"w{i}"]) == expected(i)
            assert workflow.get_status(f"w{i}") == WorkflowStatus.SUCCESSFUL
    finally:
        workflow.shutdown()
    counts = runs(log)
    for i in range(WORKFLOWS):
        # Tasks finished before the stop ran once; the one cut off mid-run started twice.
        for task in ("seed", "1", "2"):
            assert counts[f"start w{i} {task}"] == 1 and counts[f"done w{i} {task}"] == 1
        assert counts[f"start w{i} 3"] == 2 and counts[f"done w{i} 3"] == 1
        assert counts[f"start w{i} finish"] == 1
