"""Child-process side of the contract suite: functions run in freshly spawned interpreters.

Kept apart from :mod:`durableflow.testing.contract` so that a child imports neither pytest nor
the test module; each child reopens the storage from its URL, as another machine would.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from durableflow.errors import StorageUnavailableError
from durableflow.storage.urls import open_storage

__all__ = ["create_race", "reopen_and_exchange", "run_in_processes"]

_BARRIER_TIMEOUT = 60.0


def create_race(url: str, keys: Sequence[str], label: str, barrier: Any) -> list[str]:
    """Reopen ``url`` and race ``create`` on each key; return the keys this process won."""
    storage = open_storage(url)
    try:
        won = []
        for key in keys:
            barrier.wait(_BARRIER_TIMEOUT)
            if storage.create(key, label.encode()):
                won.append(key)
        return won
    finally:
        storage.close()


def reopen_and_exchange(url: str, read_key: str, write_key: str, data: bytes) -> bytes | None:
    """Reopen ``url``, write ``data`` at ``write_key``, and return what ``read_key`` holds."""
    storage = open_storage(url)
    try:
        storage.put(write_key, data)
        return storage.get(read_key)
    finally:
        storage.close()


def _child(target: Callable[..., Any], args: tuple[Any, ...], index: int, results: Any) -> None:
    try:
        results.put((index, True, target(*args)))
    except BaseException:
        results.put((index, False, traceback.format_exc()))


def run_in_processes(
    target: Callable[..., Any],
    arg_lists: Sequence[tuple[Any, ...]],
    *,
    timeout: float = 60.0,
    barrier_parties: int | None = None,
) -> list[Any]:
    """Run ``target(*args)`` in one spawned process per ``args``; return results in order.

    With ``barrier_parties``, a shared ``multiprocessing.Barrier`` is appended to each
    argument tuple, so the children can start a race together.

    Raises:
        StorageUnavailableError: a child failed or did not answer within ``timeout``; the
            message holds the child's traceback.
    """
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    extra: tuple[Any, ...] = ()
    if barrier_parties is not None:
        extra = (ctx.Barrier(barrier_parties),)
    processes = [
        ctx.Process(target=_child, args=(target, tuple(args) + extra, index, results), daemon=True)
        for index, args in enumerate(arg_lists)
    ]
    for process in processes:
        process.start()
    answers: dict[int, Any] = {}
    try:
        for _ in processes:
            try:
                index, ok, value = results.get(timeout=timeout)
            except Exception as err:  # queue.Empty: a child died or hangs
                codes = [p.exitcode for p in processes]
                raise StorageUnavailableError(
                    f"child processes did not answer within {timeout} s (exit codes {codes})"
                ) from err
            if not ok:
                raise StorageUnavailableError(f"child process {index} failed:\n{value}")
            answers[index] = value
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
    return [answers[index] for index in range(len(processes))]
