"""Per-task runtime environments on the embedded executors: ``runtime_env={...}``.

A task with a ``runtime_env`` option runs its function in a subprocess of another interpreter
(on the thread and process executors; on Ray, Ray's own ``runtime_env`` does it). Keys:

- ``python``: the interpreter's path (default: this one);
- ``pip`` or ``uv``: a requirements list (or ``{"packages": [...]}``, Ray's shape): a
  virtualenv built with uv (``python -m venv`` and pip where uv is missing) from the
  interpreter, cached under ``$DURABLEFLOW_ENV_CACHE`` (default
  ``~/.cache/durableflow/envs``) by a key of its sorted requirements and the interpreter's
  version, and reused by every task and run that asks for the same;
- ``env_vars``: environment variables for the subprocess;
- ``working_dir``: its working directory (first on its ``sys.path``).

One attempt, as numbered steps (step 3 of :mod:`durableflow.runtime.attempt`, whose steps 1-2
and 4-6 stay in the worker that runs the attempt):

1. resolve the environment: build the virtualenv under a file lock if it is not cached (a
   ``.complete`` marker written last says a build finished; a half-built one is removed and
   built again); a failure raises :class:`~durableflow.errors.RuntimeEnvError` naming the task;
2. write the function and its resolved arguments (cloudpickle) to a temporary file;
3. run a bootstrap in the interpreter, which needs nothing but cloudpickle (a private copy is
   put on its path when the environment lacks it): it loads the call, runs it (an ``async
   def`` on ``asyncio.run``) and writes ``("ok", value)`` or ``("error", exception)``;
4. the attempt's gate kills the subprocess on a cancel or past ``timeout_s``;
5. the outcome is read back here: the output crosses as a pickled value, so it must unpickle
   in the worker's environment too (plain data does; an object of a package only the task's
   environment has does not: a clear error says so).

A function is pickled by reference when its module imports in the subprocess, else by value
(``__main__``, notebooks): by value needs the same Python minor version on both sides.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cloudpickle

from durableflow.errors import RuntimeEnvError
from durableflow.runtime.gates import AttemptGate

__all__ = [
    "ENV_KEYS",
    "cache_root",
    "check_runtime_env",
    "python_version",
    "requirements_of",
    "resolve_python",
    "run_isolated",
    "venv_key",
]

ENV_KEYS = frozenset({"python", "pip", "uv", "env_vars", "working_dir"})

_BOOTSTRAP = """
import sys
source, target, extra = sys.argv[1:4]
try:
    import cloudpickle
except ImportError:
    sys.path.append(extra)
    import cloudpickle
with open(source, "rb") as f:
    func, args, kwargs = cloudpickle.load(f)
try:
    result = func(*args, **kwargs)
    import inspect
    if inspect.iscoroutine(result):
        import asyncio
        result = asyncio.run(result)
    outcome = ("ok", result)
except BaseException as err:
    outcome = ("error", err)
try:
    data = cloudpickle.dumps(outcome)
except Exception as err:
    data = cloudpickle.dumps(("error", RuntimeError(
        f"{outcome[0]}: {type(outcome[1]).__name__} that cannot be pickled: {err}")))
with open(target, "wb") as f:
    f.write(data)
"""


def cache_root() -> Path:
    """Where built environments are kept (``$DURABLEFLOW_ENV_CACHE`` or the user cache)."""
    configured = os.environ.get("DURABLEFLOW_ENV_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "durableflow" / "envs"


def check_runtime_env(env: Any, task: str) -> dict[str, Any]:
    """``env`` checked: known keys, right types.

    Raises:
        RuntimeEnvError: naming ``task`` and what is wrong.
    """
    if not isinstance(env, Mapping):
        raise RuntimeEnvError(f"task {task!r}: runtime_env must be a dict, got {env!r}")
    unknown = sorted(set(env) - ENV_KEYS)
    if unknown:
        raise RuntimeEnvError(
            f"task {task!r}: runtime_env key(s) {', '.join(unknown)} are not supported on the "
            f"embedded executors (supported: {', '.join(sorted(ENV_KEYS))}; containers and "
            "conda: use the Ray executor, whose runtime_env Ray applies)",
            task_id=task,
        )
    if "pip" in env and "uv" in env:
        raise RuntimeEnvError(f"task {task!r}: runtime_env takes pip or uv, not both")
    _requirements(env, task)
    env_vars = env.get("env_vars", {})
    if not isinstance(env_vars, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()
    ):
        raise RuntimeEnvError(f"task {task!r}: runtime_env env_vars must map str to str")
    for key in ("python", "working_dir"):
        if key in env and not isinstance(env[key], (str, os.PathLike)):
            raise RuntimeEnvError(f"task {task!r}: runtime_env {key} must be a path")
    return dict(env)


def _requirements(env: Mapping[str, Any], task: str) -> list[str]:
    reqs = env.get("pip", env.get("uv"))
    if reqs is None:
        return []
    if isinstance(reqs, Mapping):
        reqs = reqs.get("packages")
    if not isinstance(reqs, (list, tuple)) or not all(isinstance(r, str) for r in reqs):
        raise RuntimeEnvError(
            f"task {task!r}: runtime_env pip/uv must be a list of requirement strings",
            task_id=task,
        )
    return sorted(reqs)


def resolve_python(env: Mapping[str, Any], task: str) -> str:
    """Step 1: the interpreter to run the task with (a cached virtualenv built if needed).

    Raises:
        RuntimeEnvError: the interpreter is missing, or the environment cannot be built.
    """
    base = str(env.get("python") or sys.executable)
    if not os.path.exists(base) and shutil.which(base) is None:
        raise RuntimeEnvError(f"task {task!r}: runtime_env python {base!r} does not exist")
    reqs = _requirements(env, task)
    if not reqs:
        return base
    key, key_text = venv_key(python_version(base, task), reqs)
    root = cache_root()
    venv = root / key
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return str(python)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{key}.lock"):
        if (venv / ".complete").exists():  # another process built it meanwhile
            return str(python)
        shutil.rmtree(venv, ignore_errors=True)  # a build that died halfway
        try:
            _build(base, venv, reqs, task)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        (venv / "requirements.json").write_text(key_text)
        (venv / ".complete").write_text(str(time.time()))
    return str(python)


def requirements_of(env: Mapping[str, Any], task: str) -> list[str]:
    """The sorted requirements list of a ``runtime_env`` (``pip`` or ``uv``; [] for none).

    Raises:
        RuntimeEnvError: it is not a list of requirement strings.
    """
    return _requirements(env, task)


def venv_key(version: str, reqs: list[str]) -> tuple[str, str]:
    """``(key, key text)`` of the cached virtualenv for an interpreter version and requirements."""
    key_text = json.dumps({"python": version.strip(), "requirements": reqs})
    return hashlib.sha256(key_text.encode()).hexdigest()[:20], key_text


_VERSIONS: dict[tuple[str, float], str] = {}
"""Interpreter versions asked already: (path, mtime) -> ``sys.version``."""


def python_version(python: str, task: str) -> str:
    """``sys.version`` of the interpreter ``python`` (asked once per binary and mtime).

    Raises:
        RuntimeEnvError: it cannot be run.
    """
    path = shutil.which(python) or python
    try:
        key = (os.path.realpath(path), os.stat(path).st_mtime)
    except OSError:
        key = (path, 0.0)
    if key[0] == os.path.realpath(sys.executable):
        return sys.version  # this interpreter's binary: no need to start it
    if key not in _VERSIONS:
        asked = _run([python, "-c", "import sys; print(sys.version)"], task, "ask its version")
        _VERSIONS[key] = asked.strip()
    return _VERSIONS[key]


def _build(base: str, venv: Path, reqs: list[str], task: str) -> None:
    uv = shutil.which("uv") or _uv_of(sys.executable)
    if uv is not None:
        _run([uv, "venv", "--quiet", "--python", base, str(venv)], task, "create its virtualenv")
        install = [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    else:
        _run([base, "-m", "venv", str(venv)], task, "create its virtualenv")
        install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*install, *reqs], task, f"install {' '.join(reqs)}")


def _uv_of(python: str) -> str | None:
    candidate = Path(python).parent / "uv"
    return str(candidate) if candidate.exists() else None


def _run(command: list[str], task: str, what: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RuntimeEnvError(
            f"task {task!r}: its runtime_env could not {what}: {err}", task_id=task
        ) from err
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise RuntimeEnvError(
            f"task {task!r}: its runtime_env could not {what} ({command[0]} exited "
            f"{done.returncode}): {tail}",
            task_id=task,
        )
    return done.stdout


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _bootstrap_path() -> str:
    """A directory holding only cloudpickle, for interpreters that lack it."""
    target = cache_root() / "_bootstrap"
    package = Path(cloudpickle.__file__).parent
    if not (target / "cloudpickle" / "__init__.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target))
        shutil.copytree(package, staging / "cloudpickle")
        with contextlib.suppress(OSError):
            os.rename(staging / "cloudpickle", target / "cloudpickle")
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def run_isolated(
    func: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    env: Mapping[str, Any],
    gate: AttemptGate,
    task: str,
) -> Any:
    """Steps 1-5 of the module docstring: the function's result, or what it raised.

    Raises:
        RuntimeEnvError: the environment cannot be built or run, or the output cannot be read.
        WorkflowError: the gate's error, when a cancel or ``timeout_s`` killed the subprocess.
    """
    checked = check_runtime_env(env, task)
    python = resolve_python(checked, task)  # 1
    environ = {**os.environ, **checked.get("env_vars", {})}
    working_dir = checked.get("working_dir")
    with tempfile.TemporaryDirectory(prefix="durableflow-task-") as tmp:
        source, target = Path(tmp) / "call.pkl", Path(tmp) / "outcome.pkl"
        try:
            source.write_bytes(cloudpickle.dumps((func, args, kwargs)))  # 2
        except Exception as err:
            raise RuntimeEnvError(
                f"task {task!r}: its call cannot be sent to its runtime_env: {err}", task_id=task
            ) from err
        command = [python, "-c", _BOOTSTRAP, str(source), str(target), _bootstrap_path()]
        process = subprocess.Popen(  # 3
            command,
            cwd=str(working_dir) if working_dir else None,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        gate.on_close(process.kill)  # 4
        out, err_text = _communicate(process, gate)
        sys.stdout.write(out.decode(errors="replace"))
        sys.stderr.write(err_text.decode(errors="replace"))
        stopped = gate.error
        if stopped is not None and (process.returncode != 0 or not target.exists()):
            raise stopped
        if not target.exists():
            raise RuntimeEnvError(
                f"task {task!r}: its runtime_env process ({python}) exited "
                f"{process.returncode} without an outcome: "
                f"{err_text.decode(errors='replace').strip()[-2000:]}",
                task_id=task,
            )
        try:
            kind, value = cloudpickle.loads(target.read_bytes())  # 5
        except Exception as err:
            raise RuntimeEnvError(
                f"task {task!r}: its output cannot be read outside its runtime_env ({err}); "
                "return plain data (numbers, strings, lists, dicts) from such a task",
                task_id=task,
            ) from err
    if kind == "error":
        raise value
    return value


def _communicate(process: subprocess.Popen[bytes], gate: AttemptGate) -> tuple[bytes, bytes]:
    """Wait for the subprocess; kill it past the gate's deadline."""
    remaining = None
    if gate.timeout_s is not None:
        remaining = max(0.0, gate.timeout_s - gate.elapsed)
    try:
        return process.communicate(timeout=remaining)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()
