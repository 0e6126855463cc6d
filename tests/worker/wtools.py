"""Helpers of the worker tests: subprocess workers through the console script, a fake clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
CONSOLE = Path(sys.executable).with_name("durableflow")


def durableflow_command() -> list[str]:
    """The installed console script, else ``python -m durableflow.cli``."""
    return [str(CONSOLE)] if CONSOLE.exists() else [sys.executable, "-m", "durableflow.cli"]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Workers:
    """Starts ``durableflow worker`` processes and stops them at the end of the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, storage: str, *args: str) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        log = open(self.tmp_path / f"worker{n}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [
                *durableflow_command(),
                "--storage",
                storage,
                "worker",
                "--path",
                str(HERE),
                "--poll-interval",
                "0.05",
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
            cwd=self.tmp_path,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.tmp_path / f"worker{self.procs.index(proc)}.log").read_text()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
