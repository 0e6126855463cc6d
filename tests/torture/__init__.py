"""Randomized crash-and-race torture test of durableflow (issue 9).

Rounds of random workflows (chains, fan-outs, continuation loops, retries, caught errors,
sleeps, events, unchecked tasks, a task that fails until healed) on file, SQLite and S3 storage,
hurt by random faults (SIGKILL at a random time or at the n-th storage operation, storage errors
and flaky or read-only storage, kills inside resume, cancel, delete and submit, concurrent runs
and resume_alls, workers, paused runners, a second PID namespace, a skewed clock), then driven to
the end and checked (:mod:`torture.checks`).

Modules: :mod:`~torture.shapes` (the workflows), :mod:`~torture.child` (a workload process),
:mod:`~torture.rounds` (one round's processes, snapshots and log), :mod:`~torture.faults` and
:mod:`~torture.races` (the fault kinds), :mod:`~torture.checks` (the invariants),
:mod:`~torture.harness` (rounds, recovery, report, findings).

- CI: ``python -m pytest tests/torture`` runs a small fast set (two rounds per fault kind,
  fixed seeds) and two tests of the checks themselves (planted bugs must be reported).
- Soak: ``DURABLEFLOW_TORTURE_ROUNDS=1000 DURABLEFLOW_TORTURE_BACKENDS=file,sqlite,s3
  python -m pytest tests/torture -q``, or ``python -m tests.torture --rounds 1000
  [--findings FILE]`` (from the repository root). Both print, per backend, the rounds, the
  faults that fired by kind and the violations.
- Replay one round: ``python -m tests.torture --seed S --backend B --kind K``.
"""
