"""One torture round's state: its storage, its child processes, its snapshots and its log.

A :class:`Round` spawns workload processes (:mod:`torture.child`), kills, pauses and waits for
them, and takes *snapshots*: the set of checkpointed task ids listed from storage, then the
length of the execution log. Reading in that order makes the re-run check sound even while
runners are alive: an execution logged after a snapshot started after every checkpoint the
snapshot saw existed, so it must not be of one of those tasks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durableflow.errors import StorageError
from durableflow.storage import layout
from durableflow.storage.base import Storage
from durableflow.storage.urls import open_storage

CHILD = str(Path(__file__).with_name("child.py"))
TESTS_DIR = str(Path(__file__).resolve().parents[1])


@dataclass
class Execution:
    """One line of the execution log."""

    index: int
    wid: str
    tid: str
    attempt: int
    pid: int
    at: float


@dataclass
class Snapshot:
    """Checkpointed task ids, then the execution-log length, at one moment."""

    label: str
    done: frozenset[str]
    lines: int
    at: float


@dataclass
class Child:
    """A workload process of the round."""

    name: str
    action: str
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path
    ns: bool
    started: float
    answer: dict[str, Any] | None = None
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def returned_output(self) -> bool:
        """Whether this child ran or resumed the workflow and got its output back."""
        if self.answer is None or self.action not in ("run", "resume", "resume_all"):
            return False
        if self.action == "resume_all":
            return any("result" in one for one in (self.answer.get("results") or {}).values())
        return "result" in self.answer


@dataclass
class Round:
    """Everything one round needs and records.

    Attributes:
        seed: the round's seed (replays it with the same backend and fault kind).
        backend: file, sqlite or s3.
        kind: the fault kind.
        url: the round's storage URL.
        spec: the workflow shape (see :mod:`torture.shapes`).
        dir: the round's scratch directory.
        ttl: the lease TTL every process of the round uses.
        timeout: seconds a resume may take before it counts as a hang.
    """

    seed: int
    backend: str
    kind: str
    url: str
    spec: dict[str, Any]
    dir: Path
    ttl: float = 5.0
    timeout: float = 60.0
    children: list[Child] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    calm: list[tuple[int, int]] = field(default_factory=list)  # log ranges with no crash
    sabotage: str | None = None  # a planted bug every child is told about (tests of checks)
    t0: float = field(default_factory=time.monotonic)
    _storage: Storage | None = None
    _faults_seen: int = 0

    @property
    def wid(self) -> str:
        return str(self.spec["wid"])

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_storage(self.url)
        return self._storage

    def note(self, text: str) -> None:
        """Add a line to the round's event log."""
        self.events.append(f"{time.monotonic() - self.t0:7.3f}s {text}")

    def violate(self, text: str) -> None:
        """Record an invariant violation."""
        self.note(f"VIOLATION: {text}")
        self.violations.append(text)

    # -- child processes --------------------------------------------------------------------

    def spawn(self, name: str, action: str, *, ns: bool = False, **config: Any) -> Child:
        """Start a child process doing ``action`` on the round's workflow."""
        cfg = {"action": action, "url": self.url, "spec": self.spec, "lease_ttl": self.ttl}
        if self.sabotage:
            cfg["sabotage"] = self.sabotage
        cfg.update(config)
        index = len(self.children)
        out = self.dir / f"child{index}-{name}.out"
        err = self.dir / f"child{index}-{name}.err"
        cmd = [sys.executable, CHILD, json.dumps(cfg)]
        if ns:
            cmd = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *cmd]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS_DIR, env.get("PYTHONPATH", "")) if p)
        with open(out, "wb") as o, open(err, "wb") as e:
            popen = subprocess.Popen(cmd, stdout=o, stderr=e, env=env, start_new_session=True)
        child = Child(name, action, popen, out, err, ns, time.monotonic())
        self.children.append(child)
        extra = {k: v for k, v in config.items() if k not in ("spec", "go")}
        if extra.get("fault"):
            extra["fault"] = {k: v for k, v in extra["fault"].items() if k != "log"}
        self.note(f"spawn {name} pid={popen.pid} action={action} ns={ns} {extra or ''}")
        return child

    def wait(self, child: Child, timeout: float | None = None) -> dict[str, Any] | None:
        """Wait for ``child``; its answer, or None if it died or was killed.

        A child still running after ``timeout`` is killed and recorded as a hang violation.
        """
        limit = self.timeout if timeout is None else timeout
        try:
            child.popen.wait(limit)
        except subprocess.TimeoutExpired:
            self.violate(f"hang: {child.name} (pid {child.pid}) did not finish within {limit} s")
            self.kill(child)
            child.popen.wait()
            return None
        return self._answer(child)

    def answer_now(self, child: Child, timeout: float) -> dict[str, Any] | None:
        """The answer a still running child printed (it lingers), or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = child.out.read_text(errors="replace").strip().splitlines()
            if lines:
                try:
                    answer: dict[str, Any] = json.loads(lines[-1])
                    return answer
                except ValueError:
                    pass  # a line being written
            if child.popen.poll() is not None:
                return None
            time.sleep(0.02)
        return None

    def _answer(self, child: Child) -> dict[str, Any] | None:
        code = child.popen.returncode
        lines = child.out.read_text(errors="replace").strip().splitlines()
        if lines and code == 0:
            try:
                child.answer = json.loads(lines[-1])
            except ValueError:
                child.answer = None
        if code != 0 and not child.killed and code not in (-9, 137):
            self.violate(f"{child.name} exited with {code}: {self.tail(child.err, 5)}")
        self.note(f"{child.name} ended code={code} answer={json.dumps(child.answer)[:300]}")
        faults = self.dir / "faults.log"
        if faults.exists():
            fired = faults.read_text().splitlines()
            for line in fired[self._faults_seen :]:
                self.note(f"fault fired: {line}")
            self._faults_seen = len(fired)
        return child.answer

    def faults_fired(self) -> int:
        """How many faults the children logged so far (``faults.log`` lines)."""
        path = self.dir / "faults.log"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def kill(self, child: Child) -> None:
        """SIGKILL ``child`` (and, for a namespaced one, its namespace) if it still runs."""
        if child.popen.poll() is None:
            child.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            self.note(f"SIGKILL {child.name} pid={child.pid}")

    def signal(self, child: Child, sig: signal.Signals) -> bool:
        """Send ``sig`` to ``child``; False if it already ended."""
        if child.popen.poll() is not None:
            return False
        os.kill(child.pid, sig)
        self.note(f"{sig.name} {child.name} pid={child.pid}")
        return True

    def reap(self) -> None:
        """Kill every child still running (end of round)."""
        for child in self.children:
            if child.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGCONT)
                self.kill(child)
            child.popen.wait()

    def wait_started(self, timeout: float = 20.0, lines: int = 1, task: str = "") -> bool:
        """Wait until the execution log has ``lines`` lines (of ``task`` if given)."""
        deadline = time.monotonic() + timeout

        def seen() -> bool:
            return len([e for e in self.executions() if e.tid == task or not task]) >= lines

        while time.monotonic() < deadline:
            if seen():
                return True
            if all(c.popen.poll() is not None for c in self.children):
                return seen()
            time.sleep(0.005)
        return False

    # -- observations -----------------------------------------------------------------------

    def checkpoints(self) -> frozenset[str]:
        """Task ids with a checkpoint in storage now."""
        prefix = layout.outputs_prefix(self.wid)
        return frozenset(key[len(prefix) :] for key in self.storage.list(prefix))

    def executions(self) -> list[Execution]:
        """The execution log, parsed."""
        path = Path(self.spec["log"])
        if not path.exists():
            return []
        out = []
        for index, line in enumerate(path.read_text().splitlines()):
            parts = line.split()
            if len(parts) != 5:
                continue  # a torn last line of a killed writer is impossible with one write()
            wid, tid, attempt, pid, at = parts
            out.append(Execution(index, wid, tid, int(attempt), int(pid), float(at)))
        return out

    def snapshot(self, label: str) -> Snapshot | None:
        """Checkpoints first, then the log length (see the module docstring)."""
        try:
            done = self.checkpoints()
        except StorageError as err:  # e.g. SQLite locked by a paused writer
            self.note(f"snapshot {label} skipped: {type(err).__name__}: {err}")
            return None
        snap = Snapshot(label, done, len(self.executions()), time.time())
        self.snapshots.append(snap)
        self.note(f"snapshot {label}: {len(done)} checkpoints, {snap.lines} executions")
        return snap

    def calm_from(self, lines: int) -> None:
        """Executions from log line ``lines`` up to now had no crash or pause among them."""
        self.calm.append((lines, len(self.executions())))

    @staticmethod
    def tail(path: Path, count: int) -> str:
        if not path.exists():
            return ""
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-count:])

    def close(self) -> None:
        self.reap()
        if self._storage is not None:
            self._storage.close()
            self._storage = None
