"""The torture harness: rounds of random workflows, random faults, recovery and invariant checks.

A round (seed, backend, fault kind) runs in four parts:

1. pick a workflow shape and its sizes from ``random.Random(seed)``, on a fresh storage;
2. the fault kind (:mod:`torture.faults`, :mod:`torture.races`) starts workload processes
   and hurts them;
3. recovery drives the workflow to a terminal status from clean processes (``resume`` or
   ``resume_all``), each within ``timeout`` seconds, else it is a *hang*;
4. the invariants (:mod:`torture.checks`); for delete kinds (and a share of the others) the id
   is then deleted, checked for orphan keys, and reused by a new DAG.

Violations are appended to the findings file as they are found, with the replay command.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from durableflow import Client, WorkflowNotFoundError, WorkflowStatus
from torture import checks, faults, races, shapes
from torture.rounds import Round

BACKENDS = ("file", "sqlite", "s3")
KINDS = tuple(races.KINDS)
TERMINAL_OK = {WorkflowStatus.SUCCESSFUL}
CANCEL_KINDS = ("kill_cancel",)
DELETE_KINDS = ("kill_delete", "delete_race")


@dataclass
class RoundResult:
    """What one round did and found."""

    seed: int
    backend: str
    kind: str
    shape: str
    faults: list[str]
    violations: list[str]
    seconds: float
    log: list[str] = field(default_factory=list)
    forced_shape: str | None = None

    def replay(self) -> str:
        forced = f" --shape {self.forced_shape}" if self.forced_shape else ""
        return (
            f"python -m tests.torture --seed {self.seed} --backend {self.backend} "
            f"--kind {self.kind}{forced}"
        )


@dataclass
class Stats:
    """Per-backend totals."""

    rounds: int = 0
    violations: int = 0
    failed_rounds: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


class Harness:
    """Runs rounds against storages made by ``urls`` (backend name -> URL factory).

    Args:
        urls: for each backend, a function of a unique name that returns a fresh storage URL.
        workdir: scratch directory for the rounds (logs, file and SQLite storages).
        findings: a file to append violations to, or None.
        timeout: seconds a recovery may take before it counts as a hang.
        keep: keep the scratch directories of rounds with violations.
        sabotage: a bug planted in every workload process (see ``torture.child.sabotage``),
            for the tests that check the checks.
    """

    def __init__(
        self,
        urls: dict[str, Callable[[str, Path], str]],
        workdir: Path,
        findings: Path | None = None,
        timeout: float = 60.0,
        keep: bool = False,
        sabotage: str | None = None,
    ) -> None:
        self.urls = urls
        self.workdir = workdir
        self.findings = findings
        self.timeout = timeout
        self.keep = keep
        self.sabotage = sabotage
        self.stats: dict[str, Stats] = {}
        self.results: list[RoundResult] = []

    def schedule(
        self, rounds: int, seed: int, backends: Iterable[str], kinds: Iterable[str] = KINDS
    ) -> list[tuple[int, str, str]]:
        """``rounds`` (seed, backend, kind) triples covering every pair evenly."""
        bs, ks = list(backends), list(kinds)
        n = len(ks)
        return [(seed + i, bs[(i // n + i % n) % len(bs)], ks[i % n]) for i in range(rounds)]

    def run_round(
        self, seed: int, backend: str, kind: str, shape: str | None = None
    ) -> RoundResult:
        """Run one round and record its result; ``shape`` overrides the drawn shape."""
        rng = random.Random(seed)
        drawn = rng.choice(shapes.SHAPES)
        shape = shape or drawn
        rdir = Path(tempfile.mkdtemp(prefix=f"r{seed}-{backend}-{kind}-", dir=self.workdir))
        wid = f"w{seed}"
        spec = shapes.make_spec(rng, shape, wid, str(rdir))
        if kind in ("skew", "pidns", "pause", "kill_cancel"):
            spec["delay"] = max(float(spec["delay"]), 0.1)  # long enough to act on a live run
        url = self.urls[backend](f"{seed}-{rdir.name}", rdir)
        r = Round(seed, backend, kind, url, spec, rdir, timeout=self.timeout)
        r.sabotage = self.sabotage
        brief = {k: v for k, v in spec.items() if k not in ("dir", "log")}
        r.note(f"round seed={seed} backend={backend} kind={kind} dir={rdir} spec={brief}")
        if kind == "concurrent_run" and rng.random() < 0.5:
            spec["delay"] = 0.0  # fast runs: a late racer finds the workflow just finished
        timer = None
        if shape == "event":
            timer = self._file_timer(r, rng, "event", str(shapes.EVENT_VALUE))
        elif shape == "gate" and kind != "pause":  # pause opens the gate while it pauses
            timer = self._file_timer(r, rng, "heal", "")
        started = time.monotonic()
        try:
            races.KINDS[kind](r, rng)
            if timer is not None:
                timer.join()
            (rdir / "heal").touch()  # the gate of a gate shape is open for recovery
            self._finish(r, rng)
        except Exception:
            r.violate(f"harness error: {traceback.format_exc(limit=6)}")
        finally:
            r.close()
        result = RoundResult(
            seed,
            backend,
            kind,
            shape,
            list(r.faults),
            list(r.violations),
            time.monotonic() - started,
            list(r.events),
            shape if shape != drawn else None,
        )
        self._account(result, r)
        if not r.violations or not self.keep:
            shutil.rmtree(rdir, ignore_errors=True)
        return result

    def _file_timer(self, r: Round, rng: random.Random, name: str, text: str) -> threading.Thread:
        """Write ``dir/name`` (atomically) at a random time during the faults."""
        delay = rng.uniform(0.0, faults.duration(r.spec))
        path = Path(r.spec["dir"]) / name

        def fire() -> None:
            time.sleep(delay)
            staged = path.with_name(name + ".tmp")
            staged.write_text(text)
            staged.replace(path)
            r.note(f"wrote {name}")

        thread = threading.Thread(target=fire, daemon=True)
        thread.start()
        return thread

    # -- recovery and checks ----------------------------------------------------------------

    def _finish(self, r: Round, rng: random.Random) -> None:
        for child in r.children:
            if child.popen.poll() is None:
                r.wait(child)
        with Client(r.url, lease_ttl=r.ttl) as client:
            if r.kind in DELETE_KINDS:
                checks.check_views(r, client, when="after the faults")
                self._delete_and_reuse(r, client)
                return
            status = checks.check_views(r, client, when="after the faults")
            done = [c.name for c in r.children if c.returned_output()]
            if done and status is not WorkflowStatus.SUCCESSFUL:
                r.violate(
                    f"a finished workflow changed: {done} got its output, then it reads "
                    f"{status and status.value}"
                )
            terminal = set(TERMINAL_OK)
            if r.kind in CANCEL_KINDS:
                terminal.add(WorkflowStatus.CANCELED)
            self._recover(r, client, rng, terminal)
            checks.check_end(r, client, terminal)
            self._resume_finished(r, client)
            if rng.random() < 0.25:
                self._delete_and_reuse(r, client)

    def _recover(
        self, r: Round, client: Client, rng: random.Random, terminal: set[WorkflowStatus]
    ) -> None:
        """Resume from clean processes until a terminal status; a stuck resume is a hang."""
        deadline = time.monotonic() + r.timeout
        tries = 0
        while time.monotonic() < deadline and tries < 8:
            try:
                status: WorkflowStatus | None = client.get_status(r.wid)
            except WorkflowNotFoundError:
                status = None
            if status is not None and (status.is_terminal or status in terminal):
                return
            if status is WorkflowStatus.RUNNING:
                time.sleep(0.2)  # a runner in another namespace, or a lease not expired yet
                continue
            if status is WorkflowStatus.FAILED and r.spec["shape"] != "gate":
                r.violate(f"recovery: FAILED with no application failure: {self._error(client, r)}")
            tries += 1
            # No status: killed before its first status, the workflow does not exist: run it.
            action = "run" if status is None else rng.choice(("resume", "resume", "resume_all"))
            if status is WorkflowStatus.PENDING:
                action = "worker"  # submitted, waiting for a worker: start one
            remaining = max(1.0, deadline - time.monotonic())
            child = r.spawn("recover", action, include_failed=True, serve_for=remaining / 2)
            answer = r.wait(child, timeout=remaining)
            if answer is None:
                return  # a hang was recorded
            if faults.raised(answer, faults.REFUSALS) or answer.get("results") == {}:
                tries -= 1  # a lease not expired yet (another namespace): not a failed try
                time.sleep(0.3)
            elif answer.get("error"):
                r.note(f"recovery {action} raised {answer['error']}: {answer.get('message')}")
        r.violate(f"recovery: no terminal status within {r.timeout} s / {tries} resumes")

    def _resume_finished(self, r: Round, client: Client) -> None:
        """Resuming a finished workflow runs nothing: SUCCESSFUL answers its output at once,
        CANCELED refuses."""
        try:
            status = client.get_status(r.wid)
        except WorkflowNotFoundError:
            return
        if not status.is_terminal:
            return
        lines = len(r.executions())
        answer = r.wait(r.spawn("final-resume", "resume")) or {}
        ran = sorted({e.tid for e in r.executions()[lines:]})
        if ran:
            r.violate(f"resume of a {status.value} workflow ran {ran}")
        if status is WorkflowStatus.SUCCESSFUL and answer.get("result") != shapes.expected(r.spec):
            r.violate(f"resume of a SUCCESSFUL workflow answered {answer}")
        if status is WorkflowStatus.CANCELED and "error" not in answer:
            r.violate(f"resume of a CANCELED workflow answered {answer}")

    @staticmethod
    def _error(client: Client, r: Round) -> str:
        try:
            return str(client.get_metadata(r.wid).get("error"))[:300]
        except Exception as err:
            return repr(err)

    def _delete_and_reuse(self, r: Round, client: Client) -> None:
        """Delete the id from a clean process, check for orphans, run a new DAG under it."""
        answer = r.wait(r.spawn("delete", "delete"))
        if answer and "error" in answer and not faults.raised(answer, {"WorkflowNotFoundError"}):
            r.violate(f"delete raised {answer['error']}: {answer.get('message')}")
            return
        checks.check_deleted(r, client)
        since = len(r.executions())
        spec = dict(r.spec, variant=1)
        answer = r.wait(r.spawn("reuse", "run", spec=spec))
        checks.check_reuse(r, answer, since, spec)

    # -- bookkeeping ------------------------------------------------------------------------

    def _account(self, result: RoundResult, r: Round) -> None:
        self.results.append(result)
        stats = self.stats.setdefault(result.backend, Stats())
        stats.rounds += 1
        stats.violations += len(result.violations)
        stats.failed_rounds += bool(result.violations)
        stats.faults.update(result.faults)
        stats.seconds += result.seconds
        if result.violations and self.findings is not None:
            self._append_finding(result, r)

    def _append_finding(self, result: RoundResult, r: Round) -> None:
        tail = result.log[-25:]
        execs = [f"{e.tid} a{e.attempt} pid{e.pid}" for e in r.executions()][-12:]
        text = [
            f"\n### torture: seed {result.seed}, {result.backend}, {result.kind}, "
            f"shape {result.shape} ({time.strftime('%H:%M:%S', time.gmtime())} UTC)",
            f"replay: `{result.replay()}`",
            "violations:",
            *[f"- {v}" for v in result.violations],
            f"spec: `{json.dumps({k: v for k, v in r.spec.items() if k not in ('log', 'dir')})}`",
            "last round log lines:",
            "```",
            *tail,
            f"executions (last): {', '.join(execs)}",
            "```",
        ]
        with open(self.findings, "a") as handle:  # type: ignore[arg-type]
            handle.write("\n".join(text) + "\n")

    def report(self) -> str:
        """Per backend: rounds, faults by kind, violations."""
        lines = []
        for backend in sorted(self.stats):
            s = self.stats[backend]
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(s.faults.items()))
            lines.append(
                f"{backend}: {s.rounds} rounds, {s.violations} violations in "
                f"{s.failed_rounds} rounds, {s.seconds:.0f} s; faults: {kinds or 'none'}"
            )
        for res in self.results:
            if res.violations:
                lines.append(f"FAILED {res.replay()}  [{res.shape}] {res.violations[0][:160]}")
        return "\n".join(lines)
