"""The fault kinds of the torture test: what happens to a round's workflow before recovery.

Each kind is a function ``(round, rng) -> None`` that starts workload processes and hurts
them; it appends to ``round.faults`` each fault that actually fired (a kill of a process that
had already finished is not a fault) and marks the stretches of the execution log that saw no
crash or pause with :meth:`Round.calm_from`. Recovery and the invariant checks come after
(:mod:`torture.harness`).
"""

from __future__ import annotations

import functools
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from torture.rounds import Child, Round

# Errors a racing or refused caller may legitimately get.
REFUSALS = {"WorkflowStillActiveError"}


def task_count(spec: dict[str, Any]) -> int:
    """Roughly how many tasks the spec runs (for picking kill times and op numbers)."""
    n, shape = int(spec["n"]), spec["shape"]
    return {
        "chain": n,
        "fanout": n + 1,
        "continuation": 2 * n,
        "loop": n + 2,
        "retry": 3 + int(spec["fail_first"]),
        "catch": 4,
        "sleep": 5,
        "event": 4,
        "nocheckpoint": 3,
        "gate": 3,
        "mixed": n + 12,
    }[shape]


def duration(spec: dict[str, Any]) -> float:
    """A rough estimate of one uninterrupted run's wall time, process start included."""
    extra = float(spec["sleep"]) if spec["shape"] == "sleep" else 0.0
    return 0.4 + task_count(spec) * (float(spec["delay"]) + 0.02) + extra


def op_count(spec: dict[str, Any]) -> int:
    """A rough upper estimate of a run's mutating storage operations."""
    return int(9 + 1.5 * task_count(spec))  # measured: chain of 6 -> 15, mixed of 18 -> 30


def _op_fault(r: Round, rng: random.Random, limit: int, how: str | None = None) -> dict[str, Any]:
    how = how or rng.choice(("kill_before", "kill_after"))
    return {"n": rng.randint(1, max(1, limit)), "how": how, "log": str(r.dir / "faults.log")}


def _stagger(r: Round, rng: random.Random) -> float:
    """No delay, or a random one up to a run's duration (racers that come late)."""
    return 0.0 if rng.random() < 0.5 else rng.uniform(0.0, duration(r.spec))


def _fired(r: Round, child: Child, kind: str) -> bool:
    """Whether ``child`` died of the fault (record it if so)."""
    died = child.killed or child.popen.returncode in (-9, 137)
    if died:
        r.faults.append(kind)
    return died


def _kill_at_random(r: Round, rng: random.Random, child: Child, kind: str) -> bool:
    """SIGKILL ``child`` at a random time unless it ended first; True if it was killed.

    Mostly the time is counted from its first task (a kill inside the workflow), sometimes
    from its start (a kill while it sets up).
    """
    if rng.random() < 0.8:
        before = len(r.executions())
        r.wait_started(lines=before + 1)
        delay = rng.uniform(0.0, task_count(r.spec) * (float(r.spec["delay"]) + 0.02))
    else:
        delay = rng.uniform(0.05, duration(r.spec))
    try:
        child.popen.wait(delay)
    except subprocess.TimeoutExpired:
        r.kill(child)
    r.wait(child)
    return _fired(r, child, kind)


def _run_killed(r: Round, rng: random.Random, action: str = "run") -> bool:
    """One process doing ``action``, killed at a random time or storage op; True if killed."""
    start = len(r.executions())
    if rng.random() < 0.5:
        child = r.spawn("victim", action)
        killed = _kill_at_random(r, rng, child, "kill_time")
    else:
        child = r.spawn("victim", action, fault=_op_fault(r, rng, op_count(r.spec)))
        r.wait(child)
        killed = _fired(r, child, "kill_op")
    if not killed:
        r.calm_from(start)
    r.snapshot(f"after {action} ({'killed' if killed else 'not killed'})")
    return killed


def kill_time(r: Round, rng: random.Random) -> None:
    """SIGKILL the runner at a random time; sometimes the resumer too."""
    child = r.spawn("runner", "run")
    start = len(r.executions())
    if not _kill_at_random(r, rng, child, "kill_time"):
        r.calm_from(start)
    r.snapshot("after runner")
    if rng.random() < 0.4:
        resumer = r.spawn("resumer", "resume")
        start = len(r.executions())
        if not _kill_at_random(r, rng, resumer, "kill_time"):
            r.calm_from(start)
        r.snapshot("after resumer")


def kill_op(r: Round, rng: random.Random) -> None:
    """The runner dies before or after its n-th mutating storage operation."""
    start = len(r.executions())
    child = r.spawn("runner", "run", fault=_op_fault(r, rng, op_count(r.spec)))
    r.wait(child)
    if not _fired(r, child, "kill_op"):
        r.calm_from(start)
    r.snapshot("after runner")


def error_op(r: Round, rng: random.Random) -> None:
    """The runner's n-th mutating storage operation raises StorageUnavailableError."""
    fault = _op_fault(r, rng, op_count(r.spec), how="error")
    child = r.spawn("runner", "run", fault=fault)
    answer = r.wait(child)
    if (r.dir / "faults.log").exists():
        r.faults.append("error_op")
    _check_answer(r, "runner", answer, {"StorageUnavailableError", "WorkflowExecutionError"})
    r.snapshot("after runner")


def kill_resume(r: Round, rng: random.Random) -> None:
    """A crashed run, then a resume killed at its n-th mutating storage operation."""
    _run_killed(r, rng)
    start = len(r.executions())
    child = r.spawn("resumer", "resume", fault=_op_fault(r, rng, op_count(r.spec)))
    r.wait(child)
    if _fired(r, child, "kill_resume"):
        r.snapshot("after resumer")
    else:
        r.calm_from(start)


def kill_cancel(r: Round, rng: random.Random) -> None:
    """``cancel`` of a live (or crashed) workflow, killed at its n-th mutating operation."""
    dead = rng.random() < 0.3
    if dead:
        _run_killed(r, rng)
        runner = None
    else:
        runner = r.spawn("runner", "run")
        r.wait_started()
        time.sleep(rng.uniform(0.0, duration(r.spec) / 2))
    fault = _op_fault(r, rng, 10) if rng.random() < 0.8 else None
    canceler = r.spawn("canceler", "cancel", fault=fault, timeout=10)
    answer = r.wait(canceler, timeout=40)
    if fault is not None and _fired(r, canceler, "kill_cancel"):
        pass
    else:
        r.faults.append("cancel")
        # Not found: the crashed run died before its first status (the workflow never was).
        _check_answer(r, "canceler", answer, {"WorkflowNotFoundError"} if dead else set())
    if runner is not None:
        answer = r.wait(runner)  # canceled, finished, or (a lost cancel) still finishing
        _check_answer(r, "runner", answer, {"WorkflowCancellationError"})
    r.snapshot("after cancel")


def kill_delete(r: Round, rng: random.Random) -> None:
    """``delete`` of a finished or crashed workflow, killed at its n-th mutating operation."""
    if rng.random() < 0.6:
        start = len(r.executions())
        r.wait(r.spawn("runner", "run"))
        r.calm_from(start)
    else:
        _run_killed(r, rng)
    limit = 8 + 3 * task_count(r.spec)
    deleter = r.spawn("deleter", "delete", fault=_op_fault(r, rng, limit))
    answer = r.wait(deleter)
    if not _fired(r, deleter, "kill_delete"):
        _check_answer(r, "deleter", answer, {"WorkflowNotFoundError"})


def delete_race(r: Round, rng: random.Random) -> None:
    """A crashed workflow, then ``delete`` and ``resume`` started together."""
    _run_killed(r, rng)
    go = r.dir / "go-delete-race"
    resumer = r.spawn("resumer", "resume", go=str(go))
    # Issue 9 item 6: the resume may finish between the delete's read and its removals.
    deleter = r.spawn("deleter", "delete", go=str(go), start_delay=_stagger(r, rng))
    time.sleep(0.3)
    go.touch()
    r.faults.append("delete_race")
    refused = REFUSALS | {"WorkflowNotFoundError", "WorkflowNotResumableError"}
    _check_answer(r, "resumer", r.wait(resumer), refused)
    _check_answer(r, "deleter", r.wait(deleter), refused)
    r.snapshot("after race")


def concurrent_run(r: Round, rng: random.Random) -> None:
    """Several processes call ``run(dag, workflow_id=same)`` at once."""
    go = r.dir / "go-run"
    start = len(r.executions())
    # Half start at once, half later: a late racer may find the workflow just finished
    # (issue 9 item 2: it must not run it again).
    racers = [
        r.spawn(f"racer{i}", "run", go=str(go), start_delay=_stagger(r, rng))
        for i in range(rng.randint(3, 8))
    ]
    time.sleep(0.4)
    go.touch()
    r.faults.append("concurrent_run")
    for child in racers:
        _check_answer(r, child.name, r.wait(child), REFUSALS)
    r.calm_from(start)
    r.snapshot("after racers")


def concurrent_resume_all(r: Round, rng: random.Random) -> None:
    """A crashed workflow, then several processes call ``resume_all`` at once."""
    _run_killed(r, rng)
    go = r.dir / "go-resume-all"
    start = len(r.executions())
    racers = [
        r.spawn(f"bulk{i}", "resume_all", go=str(go), start_delay=_stagger(r, rng))
        for i in range(rng.randint(3, 5))
    ]
    time.sleep(0.4)
    go.touch()
    r.faults.append("concurrent_resume_all")
    for child in racers:
        answer = r.wait(child)
        for wid, one in ((answer or {}).get("results") or {}).items():
            _check_answer(r, f"{child.name}[{wid}]", one, REFUSALS)
    r.calm_from(start)
    r.snapshot("after bulk resumes")


def pause(r: Round, rng: random.Random) -> None:
    """The runner is SIGSTOPped past its lease TTL, another process resumes, then SIGCONT."""
    r.ttl = 1.5
    runner = r.spawn("runner", "run")
    gate = r.spec["shape"] == "gate"
    if gate:  # paused inside the failing gate task, which another process then passes
        r.wait_started(task="g-gate")
    else:
        r.wait_started(lines=rng.randint(1, 3))
        time.sleep(rng.uniform(0.0, 0.2))
    if not r.signal(runner, signal.SIGSTOP):
        r.wait(runner)
        return
    stopped = time.time()
    if gate:
        (r.dir / "heal").touch()
    r.faults.append("pause")
    time.sleep(2 * r.ttl + 0.5)
    resumer = r.spawn("resumer", "resume")
    # A runner paused inside a SQLite write transaction holds the database lock: the resumer
    # waits for it, so the pause ends after a while (as a GC pause or a suspended VM does).
    try:
        resumer.popen.wait(8.0)
    except subprocess.TimeoutExpired:
        r.note("the resumer still waits after 8 s: waking the paused runner first")
    woken = time.time()
    took_over = resumer.popen.poll() is not None or any(
        e.pid == resumer.pid for e in r.executions()
    )
    r.signal(runner, signal.SIGCONT)
    # StorageUnavailableError: the paused runner held the SQLite write lock past busy_timeout.
    refused = REFUSALS | {"StorageUnavailableError", "StorageURLError"}
    _check_answer(r, "resumer", r.wait(resumer), refused)
    r.snapshot("after takeover")
    answer = r.wait(runner, timeout=30)
    refusals = REFUSALS | {"RecordChangedError", "WorkflowError", "LeaseLostError"}
    _check_answer(r, "woken runner", answer, refusals, strict=False)
    for e in r.executions() if took_over else ():
        if e.pid == runner.pid and e.at >= woken:
            r.violate(
                f"fencing: the woken runner (pid {e.pid}, paused at {stopped:.3f}) started task "
                f"{e.tid} (attempt {e.attempt}) at {e.at:.3f} after another process took over"
            )


@functools.cache
def pidns_unavailable() -> str | None:
    """Why a second PID namespace cannot be made here (``unshare`` needs root), or None."""
    if shutil.which("unshare") is None:
        return "no unshare command"
    cmd = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "true"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unshare failed: {err}"
    return None if proc.returncode == 0 else f"unshare failed: {proc.stderr.strip()[:200]}"


def pidns(r: Round, rng: random.Random) -> None:
    """Runner and claimer in different PID namespaces with the same host name.

    Skipped (with the reason in the round log) where ``unshare`` cannot make a namespace.
    """
    reason = pidns_unavailable()
    if reason:
        r.note(f"pidns skipped: {reason}")
        r.wait(r.spawn("runner", "run"))
        return
    r.ttl = 3.0
    runner_in_ns = rng.random() < 0.5
    start = len(r.executions())
    runner = r.spawn("runner", "run", ns=runner_in_ns)
    r.wait_started()
    time.sleep(rng.uniform(0.0, 0.2))
    alive = runner.popen.poll() is None
    status = r.wait(r.spawn("status", "status", ns=not runner_in_ns))
    if alive and runner.popen.poll() is None:
        r.faults.append("pidns")
        if status and status.get("result") == "RESUMABLE":
            r.violate("liveness: a live runner in another PID namespace reads RESUMABLE")
    claimer = r.spawn("claimer", "resume", ns=not runner_in_ns)
    _check_answer(r, "claimer", r.wait(claimer), REFUSALS)
    if rng.random() < 0.4 and runner.popen.poll() is None:
        r.calm_from(start)
        r.kill(runner)
        r.wait(runner)
        r.faults.append("pidns_kill")
        r.snapshot("after namespaced kill")
    else:
        r.wait(runner)
        r.calm_from(start)
        r.snapshot("after runner")


def skew(r: Round, rng: random.Random) -> None:
    """A claimer whose clock is 35 s ahead tries to resume a live runner (TTL 10 s)."""
    r.ttl = 10.0
    start = len(r.executions())
    runner = r.spawn("runner", "run")
    r.wait_started()
    time.sleep(rng.uniform(0.0, 0.2))
    if runner.popen.poll() is None:
        r.faults.append("skew")
    claimer = r.spawn("claimer", "resume", skew=35.0)
    _check_answer(r, "claimer", r.wait(claimer), REFUSALS)
    r.wait(runner)
    r.calm_from(start)
    r.snapshot("after runner")


def workers(r: Round, rng: random.Random) -> None:
    """``submit`` (maybe killed), then two or three workers, one maybe killed at random."""
    fault = _op_fault(r, rng, 12) if rng.random() < 0.3 else None
    submitter = r.spawn("submitter", "submit", fault=fault)
    _check_answer(r, "submitter", r.wait(submitter), set())
    if fault is not None and _fired(r, submitter, "kill_submit"):
        r.snapshot("after submit")
    slots = rng.choice((None, 1))  # 1: the workers share one running slot
    start = len(r.executions())
    crew = [
        r.spawn(f"worker{i}", "worker", slots=slots, serve_for=20.0)
        for i in range(rng.randint(2, 3))
    ]
    r.faults.append("workers")
    killed = rng.random() < 0.6 and _kill_at_random(r, rng, rng.choice(crew), "kill_worker")
    for child in crew:
        _check_answer(r, child.name, r.wait(child), set())
    if not killed:
        r.calm_from(start)
    r.snapshot("after workers")


def _check_answer(
    r: Round, who: str, answer: dict[str, Any] | None, allowed: set[str], strict: bool = True
) -> None:
    """A finished call returned the expected output, or one of the ``allowed`` errors."""
    from torture.shapes import expected

    if answer is None:
        return
    if r.spec["shape"] == "gate":
        allowed = allowed | {"WorkflowExecutionError"}  # the gate was closed when it ran
    if "error" in answer:
        if answer["error"] not in allowed and strict:
            r.violate(f"{who} raised {answer['error']}: {answer.get('message', '')[:200]}")
        return
    result = answer.get("result")
    if who.startswith(("canceler", "deleter", "submitter", "worker")):
        return
    if result != expected(r.spec):
        r.violate(f"{who} returned {result!r}, expected {expected(r.spec)!r}")


KINDS: dict[str, Callable[[Round, random.Random], None]] = {
    "kill_time": kill_time,
    "kill_op": kill_op,
    "error_op": error_op,
    "kill_resume": kill_resume,
    "kill_cancel": kill_cancel,
    "kill_delete": kill_delete,
    "delete_race": delete_race,
    "concurrent_run": concurrent_run,
    "concurrent_resume_all": concurrent_resume_all,
    "pause": pause,
    "pidns": pidns,
    "skew": skew,
    "workers": workers,
}
