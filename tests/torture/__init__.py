"""Randomized crash-and-race torture test of durableflow (issue 9).

Rounds of random workflows (chains, fan-outs, continuation loops, retries, caught errors,
sleeps, events, unchecked tasks) on file, SQLite and S3 storage, hurt by random faults (SIGKILL
at a random time or at the n-th storage operation, kills inside resume, cancel and delete,
concurrent runs and resume_alls, paused runners, a second PID namespace, a skewed clock), then
driven to the end and checked (:mod:`torture.checks`).

- CI: ``python -m pytest tests/torture`` runs a small fast set (two rounds per fault kind).
- Soak: ``DURABLEFLOW_TORTURE_ROUNDS=1000 DURABLEFLOW_TORTURE_BACKENDS=file,sqlite,s3
  python -m pytest tests/torture -q -s``, or ``python -m tests.torture --rounds 1000``.
- Replay one round: ``python -m tests.torture --seed S --backend B --kind K``.
"""
