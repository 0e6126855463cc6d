"""The dashboard in a real browser: headless Debian Chromium driven by Playwright.

The server runs in a thread of the test process (uvicorn on a free port); workflows are seeded
with a Client, and for the resume test a real ``durableflow worker`` subprocess runs them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashseed import HERE, Seeded

from durableflow import WorkflowStatus
from durableflow.dashboard.app import Settings
from durableflow.dashboard.server import BackgroundServer

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
if not os.path.exists(CHROMIUM):  # CI installs it and must not skip; elsewhere skip, saying why
    if os.environ.get("CI"):
        raise RuntimeError(
            f"no Chromium at {CHROMIUM}: CI must install it (apt-get install chromium)"
        )
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def server(seeded: Seeded) -> Iterator[BackgroundServer]:
    running = BackgroundServer(Settings(storage=seeded.storage, port=0, list_max_age=0.0)).start()
    yield running
    running.stop()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1300, "height": 900})  # type: ignore[attr-defined]
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    opened.on("dialog", lambda dialog: dialog.accept())  # confirmations say yes
    yield opened
    context.close()


def _statuses(page: object) -> dict[str, str]:
    rows = page.locator("#workflow-table tbody tr[data-workflow-id]")  # type: ignore[attr-defined]
    return {
        rows.nth(i).get_attribute("data-workflow-id"): rows.nth(i).get_attribute("data-status")
        for i in range(rows.count())
    }


def test_list_shows_every_status_and_filters(page: object, server: BackgroundServer) -> None:
    page.goto(server.url + "workflows")  # type: ignore[attr-defined]
    assert _statuses(page) == {
        "ok-1": "SUCCESSFUL",
        "bad-1": "FAILED",
        "wait-1": "PENDING",
        "stop-1": "CANCELED",
        "again-1": "RESUMABLE",
        "run-1": "RUNNING",
    }
    page.check("input[name=status][value=FAILED]")  # type: ignore[attr-defined]
    page.check("input[name=status][value=CANCELED]")  # type: ignore[attr-defined]
    page.click("#filters button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url("**status=CANCELED**")  # type: ignore[attr-defined]
    assert _statuses(page) == {"bad-1": "FAILED", "stop-1": "CANCELED"}


def test_dag_has_one_node_per_task_with_metadata_status(
    page: object, server: BackgroundServer, seeded: Seeded
) -> None:
    seeded.failed("mixed")  # one FAILED task
    for workflow_id in ("ok-1", "again-1", "mixed"):
        page.goto(server.url + f"workflows/{workflow_id}")  # type: ignore[attr-defined]
        nodes = page.locator("svg#dag g.node")  # type: ignore[attr-defined]
        shown = {
            nodes.nth(i).get_attribute("data-task-id"): nodes.nth(i).get_attribute("data-status")
            for i in range(nodes.count())
        }
        tasks = seeded.runner.reader.list_tasks(workflow_id)
        assert len(shown) == nodes.count() == len(tasks)
        for task in tasks:
            metadata = seeded.runner.get_metadata(workflow_id, task.task_id)
            assert shown[task.task_id] == metadata["status"], (workflow_id, task.task_id)
    assert "RETRYING" in shown.values() or "FAILED" in shown.values()


def test_timeline_has_one_bar_per_attempt(
    page: object, server: BackgroundServer, seeded: Seeded
) -> None:
    counter = seeded.file()
    import dashtasks

    seeded.runner.run(
        dashtasks.flaky.options(max_retries=2, retry_exceptions=True).bind(counter, 2),
        workflow_id="flaky",
    )
    task = seeded.runner.reader.list_tasks("flaky")[0]
    assert task.attempts == 3
    page.goto(server.url + "workflows/flaky")  # type: ignore[attr-defined]
    bars = page.locator("svg#timeline rect.bar")  # type: ignore[attr-defined]
    outcomes = [bars.nth(i).get_attribute("data-outcome") for i in range(bars.count())]
    assert outcomes == ["FAILED", "FAILED", "SUCCESSFUL"]
    page.goto(server.url + "workflows/flaky/tasks/dashtasks.flaky")  # type: ignore[attr-defined]
    rows = page.locator("#attempts tbody tr")  # type: ignore[attr-defined]
    assert [rows.nth(i).get_attribute("data-outcome") for i in range(rows.count())] == outcomes
    assert "RuntimeError: attempt 1 fails" in rows.nth(0).text_content()
    assert "RuntimeError: attempt 2 fails" in rows.nth(1).text_content()


def test_failed_task_page_shows_traceback(page: object, server: BackgroundServer) -> None:
    page.goto(server.url + "workflows/bad-1")  # type: ignore[attr-defined]
    page.click("svg#dag g.node[data-task-id='dashtasks.fail_unless'] a")  # type: ignore[attr-defined]
    page.wait_for_url("**/tasks/dashtasks.fail_unless")  # type: ignore[attr-defined]
    traceback = page.text_content("#traceback")  # type: ignore[attr-defined]
    assert "Traceback (most recent call last)" in traceback
    assert 'raise ValueError(f"boom' in traceback
    assert page.text_content("#task-status") == "FAILED"  # type: ignore[attr-defined]


def test_running_node_turns_successful_without_reload(
    page: object, server: BackgroundServer, seeded: Seeded
) -> None:
    page.goto(server.url + "workflows/run-1")  # type: ignore[attr-defined]
    node = page.locator("svg#dag g.node[data-task-id='dashtasks.wait_file']")  # type: ignore[attr-defined]
    assert node.get_attribute("data-status") == "RUNNING"
    page.evaluate("window.notReloaded = true")  # type: ignore[attr-defined]
    Path(seeded.flags.pop("run-1")).touch()
    page.wait_for_selector(  # type: ignore[attr-defined]
        "svg#dag g.node[data-task-id='dashtasks.wait_file'][data-status=SUCCESSFUL]"
    )
    assert page.text_content("#workflow-status") == "SUCCESSFUL"  # type: ignore[attr-defined]
    assert page.evaluate("window.notReloaded") is True  # type: ignore[attr-defined]


def test_resume_from_page_finishes_through_a_worker(
    page: object, server: BackgroundServer, seeded: Seeded, tmp_path: Path
) -> None:
    page.goto(server.url + "workflows/bad-1")  # type: ignore[attr-defined]
    page.click("#resume-button")  # type: ignore[attr-defined]
    page.wait_for_selector("#flash:not([hidden])")  # type: ignore[attr-defined]
    assert "no worker is alive" in page.text_content("#flash")  # type: ignore[attr-defined]
    assert seeded.status("bad-1") is WorkflowStatus.RESUMABLE
    Path(seeded.flags.pop("bad-1")).touch()  # the task succeeds from now on
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "durableflow",
            "--storage",
            seeded.storage,
            "worker",
            "--path",
            str(HERE),
            "--poll-interval",
            "0.2",
            "--no-schedules",
            "--prune-every",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "worker.log", "w"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    try:
        page.wait_for_selector("#workflow-status:text('SUCCESSFUL')", timeout=30_000)  # type: ignore[attr-defined]
        assert seeded.runner.get_output("bad-1") == 7
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(20)


def test_bulk_cancel_shows_count_and_cancels_exactly_those(
    page: object, server: BackgroundServer, seeded: Seeded
) -> None:
    for i in range(3):
        seeded.failed(f"etl-{i}")
    seeded.failed("other-x")
    page.goto(server.url + "workflows?prefix=etl-&status=FAILED")  # type: ignore[attr-defined]
    page.click("button[data-bulk=cancel]")  # type: ignore[attr-defined]
    page.wait_for_selector("#bulk-status[data-finished='1']")  # type: ignore[attr-defined]
    assert page.get_attribute("#bulk-status", "data-count") == "3"  # type: ignore[attr-defined]
    assert "3 of 3 done" in page.text_content("#bulk-status")  # type: ignore[attr-defined]
    assert [seeded.status(f"etl-{i}") for i in range(3)] == [WorkflowStatus.CANCELED] * 3
    assert seeded.status("other-x") is WorkflowStatus.FAILED
    assert seeded.status("bad-1") is WorkflowStatus.FAILED


def test_script_renders_as_text(page: object, server: BackgroundServer, seeded: Seeded) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))  # type: ignore[attr-defined]
    evil = "<script>alert(1)</script>"
    seeded.successful("evil-1", note=evil)
    page.goto(server.url + "workflows/evil-1")  # type: ignore[attr-defined]
    assert evil in page.text_content("table.kv")  # type: ignore[attr-defined]
    page.goto(server.url + "workflows")  # type: ignore[attr-defined]
    assert dialogs == []
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # type: ignore[attr-defined]


def test_home_counts_and_no_worker_warning(page: object, server: BackgroundServer) -> None:
    page.goto(server.url)  # type: ignore[attr-defined]
    for status in ("SUCCESSFUL", "FAILED", "PENDING", "CANCELED", "RESUMABLE", "RUNNING"):
        card = page.locator(f"[data-status-count={status}] .n")  # type: ignore[attr-defined]
        assert card.text_content() == "1", status
    assert page.is_visible("#no-worker")  # type: ignore[attr-defined]
