"""A torture-round process: runs, resumes, cancels or deletes one workflow, maybe dying midway.

Usage: ``python child.py CONFIG_JSON``. CONFIG keys:

- ``action``: run | resume | resume_all | cancel | delete | status | submit | worker (serve
  as a ``durableflow`` worker until the workflow stops or ``serve_for`` seconds passed, with
  ``slots`` as its ``max_running_workflows``)
- ``url``, ``spec`` (see :mod:`torture.shapes`), ``lease_ttl``
- ``fault``: optional ``{"n": n, "how": "kill_before" | "kill_after" | "error", "log": path}``:
  at the n-th mutating storage operation (put, create, swap, delete; each value of put_many and
  each key of delete_prefix counts) die before it, die after it, or raise
  ``StorageUnavailableError`` instead of doing it. The operation is appended to ``log`` first.
  ``"readonly"``: every mutating operation from the n-th on raises (a storage turned
  read-only). Or ``{"how": "flaky", "p": p, "budget": k, "seed": s, "log": path}``: any operation fails
  with probability p, at most k times (see :class:`FaultAtOp`).
- ``skew``: seconds added to ``time.time`` before durableflow is imported (a fast clock)
- ``linger``: seconds to stay alive after printing the answer (the Client left open)
- ``sabotage``: a planted bug (see :func:`sabotage`), for the tests of the checks
- ``go``: a path to wait for before acting (starts racing processes together)
- ``start_delay``: seconds to sleep after ``go`` appeared (staggers the racers)

Prints one JSON line: ``{"result": value}``, ``{"error": class name, "message": text}`` or,
for resume_all, ``{"results": {workflow id: {"result"|"error": ...}}}``. "Dying" is SIGKILL of
this process, or ``os._exit(137)`` when it is PID 1 of a PID namespace (init ignores SIGKILL
sent from inside).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

CONFIG: dict[str, Any] = json.loads(sys.argv[1])
if CONFIG.get("skew"):
    _real_time = time.time
    _skew = float(CONFIG["skew"])
    time.time = lambda: _real_time() + _skew  # before durableflow reads the clock anywhere

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: ``torture`` package

from durableflow import Client, Storage  # noqa: E402
from durableflow.errors import StorageError, StorageUnavailableError  # noqa: E402
from durableflow.storage import layout  # noqa: E402
from durableflow.storage.urls import open_storage  # noqa: E402
from torture import shapes  # noqa: E402


def die() -> None:
    """Stop this process at once, with no cleanup."""
    if os.getpid() == 1:
        os._exit(137)
    os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)  # not reached


class FaultAtOp(Storage):
    """Delegates to a real storage; acts at the n-th mutating operation.

    With ``how="flaky"`` it acts on any operation instead, reads included: each fails with
    probability ``p`` (half of the failed writes land before the error is raised: a lost
    reply), at most ``budget`` times.
    """

    def __init__(self, inner: Storage, n: int, how: str, log: str, **flaky: Any) -> None:
        self.inner, self.n, self.how, self.log = inner, n, how, log
        self.seen = 0
        self.lock = threading.Lock()
        self.rng = random.Random(flaky.get("seed", 0))
        self.p = float(flaky.get("p", 0.0))
        self.budget = int(flaky.get("budget", 0))

    def _write_log(self, **fields: Any) -> None:
        line = json.dumps({"pid": os.getpid(), "how": self.how, **fields})
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, (line + "\n").encode())
        os.close(fd)

    def _flake(self, op: str, key: str) -> str | None:
        """In flaky mode: None (no fault), "before" or "after" (raise after the write)."""
        with self.lock:
            if self.how != "flaky" or self.budget <= 0 or self.rng.random() >= self.p:
                return None
            self.budget -= 1
            when = "before" if op in ("get", "list") or self.rng.random() < 0.5 else "after"
        self._write_log(op=op, key=key, when=when)
        return when

    def _read(self, op: str, key: str, fn: Any) -> Any:
        if self._flake(op, key):
            raise StorageUnavailableError(f"torture: flaky {op} {key}", key=key)
        return fn(key)

    @property
    def url(self) -> str:
        return self.inner.url

    def _due(self, op: str, key: str) -> bool:
        with self.lock:
            self.seen += 1
            if self.how == "readonly" and self.seen > self.n:
                return True  # every write from the n-th on (logged once, at the n-th)
            if self.seen != self.n or self.how == "flaky":
                return False
        self._write_log(n=self.n, op=op, key=key)
        return True

    def _call(self, op: str, key: str, fn: Any, *args: Any) -> Any:
        flake = self._flake(op, key)
        if flake == "before":
            raise StorageUnavailableError(f"torture: flaky {op} {key}", key=key)
        if flake == "after":
            fn(key, *args)
            raise StorageUnavailableError(f"torture: flaky {op} {key} (reply lost)", key=key)
        if not self._due(op, key):
            return fn(key, *args)
        if self.how == "kill_before":
            die()
        if self.how in ("error", "readonly"):
            raise StorageUnavailableError(f"torture: injected error at {op} {key}", key=key)
        result = fn(key, *args)
        die()
        return result

    def get(self, key: str) -> bytes | None:
        return self._read("get", key, self.inner.get)  # type: ignore[no-any-return]

    def list(self, prefix: str) -> list[str]:
        return self._read("list", prefix, self.inner.list)  # type: ignore[no-any-return]

    def put(self, key: str, data: bytes) -> None:
        self._call("put", key, self.inner.put, data)

    def create(self, key: str, data: bytes) -> bool:
        return bool(self._call("create", key, self.inner.create, data))

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        return bool(self._call("swap", key, self.inner.swap, expected, data))

    def delete(self, key: str) -> None:
        self._call("delete", key, self.inner.delete)

    def put_many(self, items: Any) -> None:
        items = list(items)
        with self.lock:
            hits = self.seen < self.n <= self.seen + len(items) or self.how == "flaky"
            if not hits:
                self.seen += len(items)
        if not hits:
            self.inner.put_many(items)
            return
        for key, data in items:
            self.put(key, data)

    def delete_prefix(self, prefix: str) -> None:
        for key in self.inner.list(prefix):
            self.delete(key)

    def batch(self) -> Any:
        return self.inner.batch()

    def volatile(self) -> Any:
        return self.inner.volatile()

    def close(self) -> None:
        self.inner.close()


def outcome(fn: Any) -> dict[str, Any]:
    try:
        return {"result": fn()}
    except Exception as err:
        kinds = [cls.__name__ for cls in type(err).__mro__ if issubclass(cls, Exception)]
        return {"error": type(err).__name__, "kinds": kinds, "message": str(err)[:500]}


def sabotage(storage: Storage, action: str, wid: str) -> None:
    """Planted bugs, for the tests that check the checks (``CONFIG["sabotage"]``).

    ``forget_checkpoints``: a resume first deletes every checkpoint (finished tasks re-run);
    ``hang``: a resume never returns.
    """
    plan = CONFIG.get("sabotage")
    if plan == "forget_checkpoints" and action in ("resume", "resume_all"):
        for key in storage.list(layout.outputs_prefix(wid)):
            storage.delete(key)
    if plan == "hang" and action in ("resume", "resume_all"):
        time.sleep(3600)


def serve(client: Client, wid: str) -> dict[str, Any]:
    """Serve as a worker until the workflow stops (or ``serve_for`` s); what happened."""
    from durableflow import WorkflowNotFoundError, WorkflowStatus
    from durableflow.worker import Worker

    slots = CONFIG.get("slots")
    worker = Worker(
        client, max_running_workflows=slots, concurrency=2, schedules=False, poll_interval=0.1
    )
    thread = threading.Thread(target=worker.serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + float(CONFIG.get("serve_for", 20.0))
    status = None
    missing_since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            status = client.get_status(wid)
            missing_since = time.monotonic()
        except WorkflowNotFoundError:  # a submit killed before its record: nothing comes
            status = None
            if time.monotonic() - missing_since > 1.0:
                break
        if status in (WorkflowStatus.SUCCESSFUL, WorkflowStatus.CANCELED, WorkflowStatus.FAILED):
            break
        time.sleep(0.1)
    worker.shutdown(grace=5.0)
    thread.join(10)
    return {"status": status and status.value, "started": worker.started}


def main() -> None:
    try:
        storage: Storage = open_storage(CONFIG["url"])
    except StorageError as err:  # e.g. SQLite locked by a paused writer past busy_timeout
        print(json.dumps({"error": type(err).__name__, "message": str(err)[:500]}), flush=True)
        return
    fault = CONFIG.get("fault")
    if fault:
        flaky = {k: fault[k] for k in ("seed", "p", "budget") if k in fault}
        storage = FaultAtOp(storage, int(fault.get("n", 0)), fault["how"], fault["log"], **flaky)
    go = CONFIG.get("go")
    if go:
        while not os.path.exists(go):
            time.sleep(0.002)
    time.sleep(float(CONFIG.get("start_delay", 0.0)))
    spec = CONFIG.get("spec") or {}
    wid = spec.get("wid", "")
    client = Client(storage, lease_ttl=float(CONFIG.get("lease_ttl", 30.0)), cancel_poll=0.1)
    action = CONFIG["action"]
    sabotage(storage, action, wid)
    answer: dict[str, Any]
    if action == "run":
        answer = outcome(lambda: client.run(shapes.build(spec), workflow_id=wid))
    elif action == "resume":
        answer = outcome(lambda: client.resume(wid))
    elif action == "resume_all":
        handles = client.resume_all(include_failed=bool(CONFIG.get("include_failed")))
        answer = {"results": {w: outcome(lambda h=h: h.result()) for w, h in handles}}
    elif action == "cancel":
        answer = outcome(lambda: client.cancel(wid, timeout=float(CONFIG.get("timeout", 10))))
    elif action == "delete":
        answer = outcome(lambda: client.delete(wid))
    elif action == "submit":
        answer = outcome(lambda: client.submit(shapes.build(spec), workflow_id=wid))
    elif action == "worker":
        answer = outcome(lambda: serve(client, wid))
    elif action == "status":
        answer = outcome(lambda: client.get_status(wid).value)
    else:
        raise ValueError(f"unknown action {action!r}")
    if isinstance(storage, FaultAtOp):
        answer["ops"] = storage.seen
    print(json.dumps(answer, default=repr), flush=True)
    time.sleep(float(CONFIG.get("linger", 0.0)))  # a service that lives on after a failed run
    client.close(wait=False)


if __name__ == "__main__":
    main()
