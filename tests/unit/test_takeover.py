"""Claim step 3 alone: judging whether a record's holder may be taken over (HolderJudge)."""

from __future__ import annotations

import os
import time

from durableflow.model.ownership import LeaseRecord
from durableflow.runtime.liveness import HOST, Identity, boottime
from durableflow.runtime.takeover import HolderJudge

HERE = Identity.local()
OTHER = Identity("machine-b", "boot-b", 4026531999)
DEAD_PID = 2**22 + 4321


def record(identity: Identity, pid: int, ttl: float, expires_in: float = 60.0) -> LeaseRecord:
    return LeaseRecord(
        f"{HOST}:{pid}:x",
        HOST,
        pid,
        "",
        time.time() + expires_in,
        machine_id=identity.machine_id,
        boot_id=identity.boot_id,
        pid_ns=identity.pid_ns,
        ttl=ttl,
        boot_expires=boottime() + expires_in,
    )


def test_a_holder_on_this_machine_is_judged_by_its_process_at_once() -> None:
    judge = HolderJudge(HERE, ttl=60.0)
    dead = record(HERE, DEAD_PID, ttl=60.0)
    alive = record(HERE, os.getpid(), ttl=60.0)
    assert judge.holder_dead("a", dead, dead.to_bytes())
    assert not judge.holder_dead("b", alive, alive.to_bytes())


def test_a_remote_holder_is_dead_only_after_its_bytes_sat_unchanged_for_its_ttl() -> None:
    judge = HolderJudge(HERE, ttl=60.0)
    held = record(OTHER, DEAD_PID, ttl=0.05, expires_in=-100.0)  # expired by its wall clock
    raw = held.to_bytes()
    assert not judge.holder_dead("k", held, raw)  # first sight, whatever the wall clock says
    time.sleep(0.06)
    assert judge.holder_dead("k", held, raw)
    renewed = record(OTHER, DEAD_PID, ttl=0.05, expires_in=-100.0)
    assert not judge.holder_dead("k", renewed, renewed.to_bytes() + b" ")  # changed: anew


def test_an_unreadable_record_waits_the_judges_ttl_and_forget_restarts_the_watch() -> None:
    judge = HolderJudge(HERE, ttl=0.05)
    assert judge.observed("k", b"garbage") == 0.0
    time.sleep(0.06)
    assert judge.holder_dead("k", None, b"garbage")
    judge.forget("k")
    assert not judge.holder_dead("k", None, b"garbage")


def test_waiting_for_the_observation_stops_when_the_bytes_change() -> None:
    judge = HolderJudge(HERE, ttl=60.0)
    held = record(OTHER, DEAD_PID, ttl=0.05)
    raw = held.to_bytes()
    assert judge.wait_observed("k", held, raw, lambda name: raw)
    reads: list[str] = []

    def renewed_meanwhile(name: str) -> bytes:
        reads.append(name)
        return raw + b" renewed"

    other = HolderJudge(HERE, ttl=60.0)
    assert not other.wait_observed("k", held, raw, renewed_meanwhile)
    assert reads == ["k"]
