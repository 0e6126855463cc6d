"""Race and ownership fault kinds of the torture test: several processes at one workflow.

Concurrent ``run`` calls and ``resume_all`` calls, ``delete`` racing ``resume``, workers, a
runner paused past its lease (fencing), runners in two PID namespaces and a claimer with a fast
clock (liveness). See :mod:`torture.faults` for the contract of a fault kind.
"""

from __future__ import annotations

import functools
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable

from torture.faults import (
    CRASHES,
    REFUSALS,
    check_answer,
    fired,
    kill_at_random,
    op_count,
    op_fault,
    run_killed,
    stagger,
)
from torture.rounds import Round


def delete_race(r: Round, rng: random.Random) -> None:
    """A crashed workflow, then ``delete`` and ``resume`` started together."""
    run_killed(r, rng)
    go = r.dir / "go-delete-race"
    resumer = r.spawn("resumer", "resume", go=str(go))
    # Issue 9 item 6: the resume may finish between the delete's read and its removals.
    deleter = r.spawn("deleter", "delete", go=str(go), start_delay=stagger(r, rng))
    time.sleep(0.3)
    go.touch()
    r.faults.append("delete_race")
    refused = REFUSALS | {"WorkflowNotFoundError", "WorkflowNotResumableError"}
    check_answer(r, "resumer", r.wait(resumer), refused)
    check_answer(r, "deleter", r.wait(deleter), refused)
    r.snapshot("after race")


def concurrent_run(r: Round, rng: random.Random) -> None:
    """Several processes call ``run(dag, workflow_id=same)`` at once."""
    go = r.dir / "go-run"
    start = len(r.executions())
    # Half start at once, half later: a late racer may find the workflow just finished
    # (issue 9 item 2: it must not run it again).
    racers = [
        r.spawn(f"racer{i}", "run", go=str(go), start_delay=stagger(r, rng))
        for i in range(rng.randint(3, 8))
    ]
    time.sleep(0.4)
    go.touch()
    r.faults.append("concurrent_run")
    for child in racers:
        check_answer(r, child.name, r.wait(child), REFUSALS)
    r.calm_from(start)
    r.snapshot("after racers")


def concurrent_resume_all(r: Round, rng: random.Random) -> None:
    """A crashed workflow, then several processes call ``resume_all`` at once."""
    run_killed(r, rng)
    go = r.dir / "go-resume-all"
    start = len(r.executions())
    racers = [
        r.spawn(f"bulk{i}", "resume_all", go=str(go), start_delay=stagger(r, rng))
        for i in range(rng.randint(3, 5))
    ]
    time.sleep(0.4)
    go.touch()
    r.faults.append("concurrent_resume_all")
    for child in racers:
        answer = r.wait(child)
        for wid, one in ((answer or {}).get("results") or {}).items():
            check_answer(r, f"{child.name}[{wid}]", one, REFUSALS)
    r.calm_from(start)
    r.snapshot("after bulk resumes")


def pause(r: Round, rng: random.Random) -> None:
    """The runner is SIGSTOPped past its lease TTL, another process resumes, then SIGCONT."""
    r.ttl = 1.0
    runner = r.spawn("runner", "run")
    gate = r.spec["shape"] == "gate"
    if gate:  # paused inside the failing gate task, which another process then passes
        r.wait_started(task="g-gate")
    else:
        r.wait_started(lines=rng.randint(1, 2))
        time.sleep(rng.uniform(0.0, 0.2))
    if not r.signal(runner, signal.SIGSTOP):
        r.wait(runner)
        return
    stopped = time.time()
    if gate:
        (r.dir / "heal").touch()
    r.faults.append("pause")
    time.sleep(2 * r.ttl + 0.3)
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
    check_answer(r, "resumer", r.wait(resumer), refused)
    r.snapshot("after takeover")
    answer = r.wait(runner, timeout=30)
    refusals = REFUSALS | {"RecordChangedError", "WorkflowError", "LeaseLostError"}
    check_answer(r, "woken runner", answer, refusals, strict=False)
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
    check_answer(r, "claimer", r.wait(claimer), REFUSALS)
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
    check_answer(r, "claimer", r.wait(claimer), REFUSALS)
    r.wait(runner)
    r.calm_from(start)
    r.snapshot("after runner")


def workers(r: Round, rng: random.Random) -> None:
    """``submit`` (maybe killed), then two or three workers, one maybe killed at random."""
    fault = op_fault(r, rng, 12) if rng.random() < 0.3 else None
    submitter = r.spawn("submitter", "submit", fault=fault)
    check_answer(r, "submitter", r.wait(submitter), set())
    if fault is not None and fired(r, submitter, "kill_submit"):
        r.snapshot("after submit")
    slots = rng.choice((None, 1))  # 1: the workers share one running slot
    start = len(r.executions())
    crew = [
        r.spawn(f"worker{i}", "worker", slots=slots, serve_for=20.0)
        for i in range(rng.randint(2, 3))
    ]
    r.faults.append("workers")
    killed = rng.random() < 0.6 and kill_at_random(r, rng, rng.choice(crew), "kill_worker")
    for child in crew:
        check_answer(r, child.name, r.wait(child), set())
    if not killed:
        r.calm_from(start)
    r.snapshot("after workers")


def readonly(r: Round, rng: random.Random) -> None:
    """The runner's storage turns read-only mid-run; the runner gives up but lives on.

    Issue 9 item 13: on the runner's own host the workflow must read RESUMABLE at once (not
    RUNNING until the lease expires), and another process must be able to resume it.
    """
    r.ttl = 10.0
    fault = op_fault(r, rng, op_count(r.spec), how="readonly")
    fault["n"] = rng.randint(8, op_count(r.spec) + 4)  # after the workflow's first records
    runner = r.spawn("runner", "run", fault=fault, linger=2 * r.ttl)
    answer = r.answer_now(runner, r.timeout)
    if answer is None or "error" not in answer or runner.popen.poll() is not None:
        r.kill(runner)  # it finished before the storage turned (and lingers), or died
        r.wait(runner)
        return
    r.faults.append("readonly")
    status = r.wait(r.spawn("status", "status"))
    if status and status.get("result") in ("RUNNING", "PENDING"):
        r.violate(
            f"readonly: the runner gave up ({answer['error']}) and lives on; the workflow "
            f"reads {status['result']} on its host instead of RESUMABLE"
        )
    resumer = r.spawn("resumer", "resume")
    refused = {"WorkflowNotFoundError"}  # the storage turned before the first record
    check_answer(r, "resumer", r.wait(resumer), refused)
    r.kill(runner)
    r.wait(runner)
    r.snapshot("after resume")


KINDS: dict[str, Callable[[Round, random.Random], None]] = {
    **CRASHES,
    "delete_race": delete_race,
    "concurrent_run": concurrent_run,
    "concurrent_resume_all": concurrent_resume_all,
    "pause": pause,
    "pidns": pidns,
    "skew": skew,
    "workers": workers,
    "readonly": readonly,
}
