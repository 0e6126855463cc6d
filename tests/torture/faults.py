"""Crash fault kinds of the torture test, and the helpers every fault kind uses.

A fault kind (here and in :mod:`torture.races`) is what happens to a round's workflow before
recovery. Each kind is a function ``(round, rng) -> None`` that starts workload processes and hurts
them; it appends to ``round.faults`` each fault that actually fired (a kill of a process that
had already finished is not a fault) and marks the stretches of the execution log that saw no
crash or pause with :meth:`Round.calm_from`. Recovery and the invariant checks come after
(:mod:`torture.harness`).
"""

from __future__ import annotations

import random
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


def op_fault(r: Round, rng: random.Random, limit: int, how: str | None = None) -> dict[str, Any]:
    how = how or rng.choice(("kill_before", "kill_after"))
    return {"n": rng.randint(1, max(1, limit)), "how": how, "log": str(r.dir / "faults.log")}


def stagger(r: Round, rng: random.Random) -> float:
    """No delay, or a random one up to a run's duration (racers that come late)."""
    return 0.0 if rng.random() < 0.5 else rng.uniform(0.0, duration(r.spec))


def fired(r: Round, child: Child, kind: str) -> bool:
    """Whether ``child`` died of the fault (record it if so)."""
    died = child.killed or child.popen.returncode in (-9, 137)
    if died:
        r.faults.append(kind)
    return died


def kill_at_random(r: Round, rng: random.Random, child: Child, kind: str) -> bool:
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
    return fired(r, child, kind)


def run_killed(r: Round, rng: random.Random, action: str = "run") -> bool:
    """One process doing ``action``, killed at a random time or storage op; True if killed."""
    start = len(r.executions())
    if rng.random() < 0.5:
        child = r.spawn("victim", action)
        killed = kill_at_random(r, rng, child, "kill_time")
    else:
        child = r.spawn("victim", action, fault=op_fault(r, rng, op_count(r.spec)))
        r.wait(child)
        killed = fired(r, child, "kill_op")
    if not killed:
        r.calm_from(start)
    r.snapshot(f"after {action} ({'killed' if killed else 'not killed'})")
    return killed


def kill_time(r: Round, rng: random.Random) -> None:
    """SIGKILL the runner at a random time; sometimes the resumer too."""
    start = len(r.executions())
    child = r.spawn("runner", "run")
    if not kill_at_random(r, rng, child, "kill_time"):
        r.calm_from(start)
    r.snapshot("after runner")
    if rng.random() < 0.4:
        start = len(r.executions())
        resumer = r.spawn("resumer", "resume")
        if not kill_at_random(r, rng, resumer, "kill_time"):
            r.calm_from(start)
        r.snapshot("after resumer")


def kill_op(r: Round, rng: random.Random) -> None:
    """The runner dies before or after its n-th mutating storage operation."""
    start = len(r.executions())
    child = r.spawn("runner", "run", fault=op_fault(r, rng, op_count(r.spec)))
    r.wait(child)
    if not fired(r, child, "kill_op"):
        r.calm_from(start)
    r.snapshot("after runner")


def error_op(r: Round, rng: random.Random) -> None:
    """The runner's n-th mutating storage operation raises StorageUnavailableError."""
    fault = op_fault(r, rng, op_count(r.spec), how="error")
    child = r.spawn("runner", "run", fault=fault)
    answer = r.wait(child)
    if (r.dir / "faults.log").exists():
        r.faults.append("error_op")
    check_answer(r, "runner", answer, {"StorageUnavailableError", "WorkflowExecutionError"})
    r.snapshot("after runner")


def kill_resume(r: Round, rng: random.Random) -> None:
    """A crashed run, then one to three resumes, each killed (or failed with a storage error)
    at its n-th mutating storage operation."""
    run_killed(r, rng)
    for attempt in range(rng.randint(1, 3)):
        how = "error" if rng.random() < 0.25 else None
        start = len(r.executions())
        child = r.spawn(
            f"resumer{attempt}", "resume", fault=op_fault(r, rng, op_count(r.spec), how)
        )
        answer = r.wait(child)
        if how == "error":
            r.faults.append("error_resume")
            refused = REFUSALS | {"StorageUnavailableError", "WorkflowNotFoundError"}
            check_answer(r, child.name, answer, refused, strict=False)
        elif fired(r, child, "kill_resume"):
            r.snapshot(f"after resumer {attempt}")
            continue
        else:
            r.calm_from(start)
        r.snapshot(f"after resumer {attempt}")


def flaky_storage(r: Round, rng: random.Random) -> None:
    """The runner's storage (reads too) fails now and then; sometimes a flaky resume follows."""
    for attempt, action in enumerate(("run", "resume")):
        if attempt and rng.random() < 0.5:
            break
        fault = {
            "how": "flaky",
            "p": rng.choice((0.02, 0.05, 0.1, 0.2)),
            "budget": rng.randint(1, 4),
            "seed": rng.randrange(1 << 30),
            "log": str(r.dir / "faults.log"),
        }
        before = r.faults_fired()
        answer = r.wait(r.spawn(f"flaky-{action}", action, fault=fault))
        if r.faults_fired() > before:
            r.faults.append("flaky_storage")
        # A storage error may surface as any error of the call; the end checks judge it.
        check_answer(r, f"flaky-{action}", answer, set(), strict=False)
        r.snapshot(f"after flaky {action}")


def kill_cancel(r: Round, rng: random.Random) -> None:
    """``cancel`` of a live (or crashed) workflow, killed at its n-th mutating operation."""
    dead = rng.random() < 0.3
    if dead:
        run_killed(r, rng)
        runner = None
    else:
        runner = r.spawn("runner", "run")
        r.wait_started()
        time.sleep(rng.uniform(0.0, 0.3))
    fault = op_fault(r, rng, 8 if dead else 1) if rng.random() < 0.8 else None
    canceler = r.spawn("canceler", "cancel", fault=fault, timeout=10)
    answer = r.wait(canceler, timeout=40)
    if fault is not None and fired(r, canceler, "kill_cancel"):
        pass
    else:
        r.faults.append("cancel")
        # Not found: the crashed run died before its first status (the workflow never was).
        check_answer(r, "canceler", answer, {"WorkflowNotFoundError"} if dead else set())
    if runner is not None:
        answer = r.wait(runner)  # canceled, finished, or (a lost cancel) still finishing
        check_answer(r, "runner", answer, {"WorkflowCancellationError"})
    r.snapshot("after cancel")


def kill_delete(r: Round, rng: random.Random) -> None:
    """``delete`` of a finished or crashed workflow, killed at its n-th mutating operation."""
    if rng.random() < 0.6:
        start = len(r.executions())
        r.wait(r.spawn("runner", "run"))
        r.calm_from(start)
    else:
        run_killed(r, rng)
    limit = 8 + 3 * task_count(r.spec)
    deleter = r.spawn("deleter", "delete", fault=op_fault(r, rng, limit))
    answer = r.wait(deleter)
    if not fired(r, deleter, "kill_delete"):
        check_answer(r, "deleter", answer, {"WorkflowNotFoundError"})


def raised(answer: dict[str, Any] | None, names: set[str]) -> bool:
    """Whether a child's answer is an error of one of ``names`` (or of a subclass)."""
    if not answer or "error" not in answer:
        return False
    return bool(names & set(answer.get("kinds") or [answer["error"]]))


def check_answer(
    r: Round, who: str, answer: dict[str, Any] | None, allowed: set[str], strict: bool = True
) -> None:
    """A finished call returned the expected output, or one of the ``allowed`` errors."""
    from torture.shapes import expected

    if answer is None:
        return
    if r.spec["shape"] == "gate":
        allowed = allowed | {"WorkflowExecutionError"}  # the gate was closed when it ran
    if "error" in answer:
        # An allowed error's subclass is allowed (e.g. resume's ResumeNotFoundError).
        if not raised(answer, allowed) and strict:
            r.violate(f"{who} raised {answer['error']}: {answer.get('message', '')[:200]}")
        return
    result = answer.get("result")
    if who.startswith(("canceler", "deleter", "submitter", "worker")):
        return
    if result != expected(r.spec):
        r.violate(f"{who} returned {result!r}, expected {expected(r.spec)!r}")


CRASHES: dict[str, Callable[[Round, random.Random], None]] = {
    "kill_time": kill_time,
    "kill_op": kill_op,
    "error_op": error_op,
    "kill_resume": kill_resume,
    "kill_cancel": kill_cancel,
    "kill_delete": kill_delete,
    "flaky_storage": flaky_storage,
}
