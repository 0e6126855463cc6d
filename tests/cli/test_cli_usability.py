"""What a new user trips over in the CLI (issue 10): long outputs, warnings, -v, typo'd storage.

Commands run in this process through click's CliRunner; the one that needs a real process
(the log handler ``-v`` sets up on the process's stderr) runs the console script.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import ctasks
import pytest
from click.testing import CliRunner
from clitools import run_cli, run_cli_process

from durableflow import Client, WorkflowExecutionError
from durableflow.cli import cli
from durableflow.cli._common import install_warning_printer
from durableflow.cli.workflows import PREVIEW_CHARS
from durableflow.errors import EnvironmentChangedWarning
from durableflow.runtime.environment import expand_environment


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, Client]]:
    url = str(tmp_path / "store")
    client = Client(url)
    yield url, client
    client.close()


def invoke(url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--storage", url, *args])


# --- 10.13: output of a big value -----------------------------------------------------------------


def test_output_of_a_long_str_is_cut_with_a_hint(store):
    url, client = store
    client.run(ctasks.big_text.bind(3 * PREVIEW_CHARS), workflow_id="text")
    result = invoke(url, "output", "text")
    assert result.exit_code == 0, result.output
    assert result.stdout == "x" * PREVIEW_CHARS + "\n"
    assert f"{2 * PREVIEW_CHARS:,} more characters" in result.stderr
    assert "--full" in result.stderr and "--out FILE" in result.stderr
    full = invoke(url, "output", "text", "--full")
    assert full.stdout == "x" * (3 * PREVIEW_CHARS - 1) + "!\n"
    assert full.stderr == ""


def test_output_of_big_bytes_prints_a_bounded_repr(store):
    url, client = store
    size = 4 * 1024 * 1024
    client.run(ctasks.big_bytes.bind(size), workflow_id="blob")
    result = invoke(url, "output", "blob")
    assert result.exit_code == 0, result.output
    assert len(result.stdout) == PREVIEW_CHARS + 1
    assert result.stdout.startswith("b'\\x00\\x01")
    assert f"the output is {size:,} bytes" in result.stderr


def test_output_of_a_big_object_is_cut_and_a_short_one_is_not(store):
    url, client = store
    client.run(ctasks.big_list.bind(100_000), workflow_id="list")
    client.run(ctasks.big_list.bind(3), workflow_id="short")
    cut = invoke(url, "output", "list")
    assert cut.stdout == repr(list(range(100_000)))[:PREVIEW_CHARS] + "\n"
    assert "more characters" in cut.stderr
    short = invoke(url, "output", "short")
    assert (short.stdout, short.stderr) == ("[0, 1, 2]\n", "")
    # --json is for scripts: never cut.
    assert len(invoke(url, "output", "list", "--json").stdout) > 100_000


def test_output_out_writes_raw_bytes_text_or_repr(store, tmp_path):
    url, client = store
    client.run(ctasks.big_bytes.bind(1 << 20), workflow_id="blob")
    client.run(ctasks.big_text.bind(50_000), workflow_id="text")
    client.run(ctasks.big_list.bind(5), workflow_id="list")
    for workflow_id, expected in (
        ("blob", bytes(range(256)) * 4096),
        ("text", ("x" * 49_999 + "!").encode()),
        ("list", b"[0, 1, 2, 3, 4]\n"),
    ):
        target = tmp_path / f"{workflow_id}.out"
        result = invoke(url, "output", workflow_id, "--out", str(target))
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
        assert target.read_bytes() == expected
        assert f"wrote {len(expected):,} bytes to {target}" in result.stderr
    target = tmp_path / "list.json"
    assert invoke(url, "output", "list", "--json", "--out", str(target)).exit_code == 0
    assert target.read_text() == "[\n  0,\n  1,\n  2,\n  3,\n  4\n]\n"


def test_output_help_says_what_out_writes():
    text = CliRunner().invoke(cli, ["output", "--help"]).stdout
    assert "--full" in text and "--out FILE" in text and "Not a pickle" in text


# --- 10.14: warnings as one readable line ---------------------------------------------------------


def test_warning_printer_prints_one_line_and_restores(capsys):
    before = warnings.showwarning
    restore = install_warning_printer()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(
                "workflow 'w' resumes in a\nchanged environment",
                EnvironmentChangedWarning,
                stacklevel=1,
            )
    finally:
        restore()
    assert warnings.showwarning is before
    printed = capsys.readouterr().err
    assert printed == (
        "warning: EnvironmentChangedWarning: workflow 'w' resumes in a changed environment\n"
    )


def test_the_worker_logs_a_warning_as_one_log_line(caplog):
    import logging

    logger = logging.getLogger("durableflow.worker")
    restore = install_warning_printer(logger)
    try:
        with warnings.catch_warnings(), caplog.at_level(logging.WARNING, "durableflow.worker"):
            warnings.simplefilter("always")
            warnings.warn("env\nchanged", EnvironmentChangedWarning, stacklevel=1)
    finally:
        restore()
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("durableflow.worker", "WARNING", "EnvironmentChangedWarning: env changed")
    ]


@pytest.mark.slow
def test_resume_in_a_changed_environment_prints_one_warning_line(tmp_path: Path):
    url = str(tmp_path / "store")
    client = Client(url)
    flag = str(tmp_path / "flag")
    with pytest.raises(WorkflowExecutionError):
        client.run(ctasks.fail_unless.bind(flag, 3), workflow_id="envy")
    record = client.store.read_run("envy")
    env = expand_environment(client.store, record.runtime_env)
    env["packages"] = {**env["packages"], "click": "0.0.1"}
    client.store.write_run(record.replace(runtime_env=env))
    client.close()
    Path(flag).touch()
    result = run_cli(url, "resume", "envy")
    assert result.code == 0, result.err
    assert result.out.strip() == "3"
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("warning: EnvironmentChangedWarning: workflow 'envy' resumes")
    assert "click: 0.0.1 ->" in lines[0]
    assert ".py:" not in result.err  # no file:line, no source line


# --- 10.20: -v shows durableflow's INFO lines -----------------------------------------------------


@pytest.mark.slow
def test_verbose_flag_shows_info_log_lines(tmp_path: Path):
    url = str(tmp_path / "store")
    Client(url).close()
    quiet = run_cli_process(url, "list")
    assert quiet.code == 0 and "INFO" not in quiet.err
    loud = run_cli_process(url, "-v", "list")
    assert loud.code == 0
    assert "INFO durableflow: durableflow storage: " in loud.err
    debug = run_cli_process(url, "-vv", "list")
    assert debug.code == 0 and "INFO durableflow" in debug.err


def test_verbose_is_documented_in_help():
    text = CliRunner().invoke(cli, ["--help"]).stdout
    assert "-v, --verbose" in text


# --- 10.2: read-only commands never create a storage ----------------------------------------------

READERS = [
    ("list",),
    ("status", "x"),
    ("show", "x"),
    ("output", "x"),
    ("metadata", "x"),
    ("env", "show", "x"),
    ("env", "diff", "x"),
    ("schedule", "list"),
    ("schedule", "show", "x"),
    ("cancel", "x"),
    ("delete", "x", "--yes"),
    ("resume", "x"),
    ("resume-all",),
]


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a))
def test_commands_on_a_mistyped_path_fail_in_one_line_and_create_nothing(tmp_path, args):
    typo = tmp_path / "typo" / "store"
    result = invoke(str(typo), *args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no durableflow storage at"), lines
    assert str(typo) in lines[0]
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("scheme", ["sqlite", "file"])
def test_list_on_a_mistyped_url_creates_nothing(tmp_path, scheme):
    target = tmp_path / "nonexistent-dir" / "x" / ("wf.db" if scheme == "sqlite" else "store")
    result = invoke(f"{scheme}://{target}", "list")
    assert result.exit_code == 1
    assert "no durableflow storage at" in result.stderr
    assert not (tmp_path / "nonexistent-dir").exists()


def test_a_worker_and_schedule_add_create_the_storage(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    target = tmp_path / "new" / "store"
    added = invoke(str(target), "schedule", "add", "n", "--dag", "ctasks:nightly", "--every", "1h")
    assert added.exit_code == 0, added.output
    assert invoke(str(target), "schedule", "list", "--json").exit_code == 0
    other = tmp_path / "new2" / "store"
    ran = invoke(str(other), "worker", "--once", "--no-schedules")
    assert ran.exit_code == 0, ran.output
    assert invoke(str(other), "list").exit_code == 0


def test_an_existing_empty_storage_lists_nothing(store):
    url, _ = store
    result = invoke(url, "list", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "[]"
    assert os.path.isdir(url)
