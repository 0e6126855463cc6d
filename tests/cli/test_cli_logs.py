"""``durableflow logs`` and ``durableflow show --watch`` / big fan-outs (issue 13)."""

from __future__ import annotations

import importlib
import time
import types
from pathlib import Path
from typing import Any

import pytest
from clitools import World

from durableflow import Client, WorkflowExecutionError, WorkflowStatus, workflow
from durableflow.cli import view as view_cli
from durableflow.model.calls import TaskCall
from durableflow.runtime import logcapture
from durableflow.runtime.context import task_context
from helpers import wait_until


@workflow.task
def part(i: int, flag: str) -> int:
    if i == 7 and not Path(flag).exists():
        raise ValueError("part 7 needs its flag")
    return i


@workflow.task
def gather(*parts: int) -> int:
    return sum(parts)


@workflow.task
def countdown(n: int) -> Any:
    if n == 0:
        return 0
    return workflow.continuation(countdown.bind(n - 1))


@workflow.task
def hold(path: str, value: int) -> int:
    while not Path(path).exists():
        time.sleep(0.01)
    return value


def first_cells(out: str) -> list[str]:
    """The first cell of every row of a table (rich's or the plain one)."""
    cells = []
    for line in out.splitlines():
        row = line.strip().strip("│┃").strip()
        if row:
            cells.append(row.split("│")[0].split("  ")[0].strip())
    return cells


def fan_out(fresh: World, n: int = 60) -> str:
    flag = fresh.file()
    dag = gather.bind(*[part.options(task_id=f"part-{i:02d}").bind(i, flag) for i in range(n)])
    with pytest.raises(WorkflowExecutionError):
        fresh.runner.run(dag, workflow_id="fan")
    return flag


def test_show_of_a_big_fan_out_prints_a_summary_and_the_tasks_that_need_a_look(
    fresh: World,
) -> None:
    fan_out(fresh)
    shown = fresh.cli("show", "fan")
    assert shown.code == 0, shown.err
    (summary,) = [line for line in shown.out.splitlines() if line.startswith("tasks ")]
    assert " of 61 done: " in summary and "1 FAILED" in summary
    assert "part-07" in shown.out and "FAILED" in shown.out
    assert [cell for cell in first_cells(shown.out) if cell.startswith("part-")] == ["part-07"]
    assert "--all-tasks" in shown.out
    every = fresh.cli("show", "fan", "--all-tasks")
    assert every.code == 0, every.err
    assert len([cell for cell in first_cells(every.out) if cell.startswith("part-")]) == 60
    assert not any(line.startswith("tasks ") for line in every.out.splitlines())
    as_json = fresh.cli("show", "fan", "--json").json()
    assert len(as_json["tasks"]) == 61  # scripts always get every task


def test_show_draws_deep_continuations_without_a_staircase(fresh: World) -> None:
    assert fresh.runner.run(countdown.bind(12), workflow_id="deep") == 0
    shown = fresh.cli("show", "deep", "--all-tasks")
    assert shown.code == 0, shown.err
    assert "└[12] " in shown.out
    rows = [line for line in shown.out.splitlines() if "countdown" in line]
    assert len(rows) == 13
    deepest = 2 + 2 * view_cli.MAX_INDENT  # a table border, then the capped indent
    assert max(line.index("└") for line in rows if "└" in line) <= deepest, shown.out


def test_show_watch_follows_a_running_workflow_until_it_ends(
    fresh: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = fresh.file()
    future = fresh.runner.run_async(hold.options(task_id="held").bind(release, 3), workflow_id="w")
    wait_until(lambda: fresh.status("w") is WorkflowStatus.RUNNING)
    wait_until(
        lambda: any(t.status.value == "RUNNING" for t in fresh.runner.reader.list_tasks("w"))
    )
    frames: list[int] = []

    def sleep(seconds: float) -> None:  # the watch's refresh: free the task after one frame
        frames.append(1)
        Path(release).touch()
        time.sleep(seconds)

    monkeypatch.setattr(view_cli, "time", types.SimpleNamespace(time=time.time, sleep=sleep))
    watched = fresh.cli("show", "w", "--watch", "--interval", "0.05")
    assert watched.code == 0, watched.err
    assert future.result(timeout=30) == 3
    first = watched.out.splitlines()[0]
    assert first.startswith("workflow w  RUNNING  0 of 1 done")
    assert "  RUNNING   held" in watched.out
    assert "status       SUCCESSFUL" in watched.out  # the final view
    assert frames


def test_show_watch_of_a_finished_workflow_just_shows_it(fresh: World) -> None:
    fresh.runner.run(gather.bind(1, 2), workflow_id="done")
    watched = fresh.cli("show", "done", "--watch")
    assert watched.code == 0, watched.err
    assert watched.out.splitlines()[0] == "workflow     done"
    refused = fresh.cli("show", "done", "--watch", "--json")
    assert refused.code == 2 and "do not go together" in refused.err


# --- durableflow logs ---------------------------------------------------------------------


def _log(client: Client, workflow_id: str, task_id: str, attempt: int, *lines: str) -> None:
    """What an attempt of ``task_id`` would capture, through the same task context."""
    call = TaskCall(
        workflow_id, task_id, attempt, None, (), {}, {}, True, False, store=client.store
    )
    mode, _ = logcapture.settings()
    logcapture.configure(mode="capture")  # not tee'd into the output of a command running now
    try:
        with task_context(workflow_id, task_id, call=call):
            for line in lines:
                print(line)
    finally:
        logcapture.configure(mode=mode)


def test_logs_prints_each_attempt_under_its_title(fresh: World) -> None:
    fresh.runner.run(gather.bind(1, 2), workflow_id="lw")
    _log(fresh.runner, "lw", "a", 1, "first try")
    _log(fresh.runner, "lw", "a", 2, "second try")
    _log(fresh.runner, "lw", "b", 1, "b says hi")
    shown = fresh.cli("logs", "lw")
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert lines[0].startswith("=== task a attempt 1 (started ") and lines[1] == "first try"
    assert lines[2].startswith("=== task a attempt 2") and lines[3] == "second try"
    assert lines[4].startswith("=== task b attempt 1") and lines[5] == "b says hi"
    one = fresh.cli("logs", "lw", "--task", "b")
    assert one.out.splitlines()[1:] == ["b says hi"]
    data = fresh.cli("logs", "lw", "--json").json()
    assert [e["text"] for e in data["tasks"]["a"]] == ["first try\n", "second try\n"]


def test_logs_of_unknown_ids_fail_in_one_line(fresh: World) -> None:
    fresh.runner.run(gather.bind(1), workflow_id="lw")
    assert "nope" in fresh.cli("logs", "nope").one_line_error()
    assert "ghost" in fresh.cli("logs", "lw", "--task", "ghost").one_line_error()
    empty = fresh.cli("logs", "lw")
    assert empty.code == 0 and "no logs for workflow 'lw'" in empty.err


def test_logs_follow_prints_new_output_until_the_workflow_ends(
    fresh: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs_cli = importlib.import_module(
        "durableflow.cli.logs"
    )  # the package's `logs` is the command

    release = fresh.file()
    future = fresh.runner.run_async(hold.options(task_id="held").bind(release, 3), workflow_id="f")
    wait_until(lambda: fresh.status("f") is WorkflowStatus.RUNNING)
    _log(fresh.runner, "f", "early", 1, "before the follow")
    polls: list[int] = []

    def sleep(seconds: float) -> None:  # between two reads: more output, then the end
        polls.append(1)
        if len(polls) == 1:
            _log(fresh.runner, "f", "late", 1, "during the follow")
        else:
            Path(release).touch()
            future.result(timeout=30)

    monkeypatch.setattr(logs_cli, "time", types.SimpleNamespace(sleep=sleep))
    followed = fresh.cli("logs", "f", "--follow")
    assert followed.code == 0, followed.err
    out = followed.out.splitlines()
    assert out[1] == "before the follow" and out[3] == "during the follow"
    assert out.count("before the follow") == 1
    assert "workflow f is SUCCESSFUL" in followed.err


def test_the_watch_frame_lists_running_and_failing_tasks() -> None:
    now = time.time()
    rows = [
        {"task_id": f"t{i}", "status": s, "attempts": 1, "start_time": now - 5, "error": None}
        for i, s in enumerate(["SUCCESSFUL", "RUNNING", "PENDING", "RUNNING"])
    ]
    rows.append(
        {"task_id": "bad", "status": "RETRYING", "attempts": 2, "start_time": None, "error": "E: x"}
    )
    frame = view_cli._watch_frame("w", "RUNNING", rows)
    assert (
        frame[0]
        == "workflow w  RUNNING  1 of 5 done: 2 RUNNING, 1 PENDING, 1 RETRYING, 1 SUCCESSFUL"
    )
    assert frame[1].startswith("  RUNNING   t1  running ") and frame[2].startswith("  RUNNING   t3")
    assert frame[3] == "  RETRYING  bad  E: x"


def test_show_names_the_trace_of_a_traced_run(fresh: World) -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from durableflow import telemetry

    fresh.runner.run(gather.bind(1), workflow_id="t")
    assert "trace " not in fresh.cli("show", "t").out
    telemetry.configure(tracer_provider=sdk.TracerProvider())
    try:
        record = fresh.runner.store.read_run("t")
        telemetry.end_run(telemetry.start_run(fresh.runner.store, record, "thread"), record)
    finally:
        telemetry.configure()
    (trace_id,) = [run["trace_id"] for run in telemetry.read_traces(fresh.runner.storage, "t")]
    assert f"trace        {trace_id}" in fresh.cli("show", "t").out
