"""Take the screenshots of docs/dashboard.md: ``python tests/dashboard/make_screenshots.py``.

Seeds a demo storage (a pipeline with a continuation, a task retried twice, a FAILED run, a
RUNNING one, a schedule), serves the dashboard in a thread and photographs each view with
headless Chromium into ``docs/images/dashboard-*.png``.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import dashtasks  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from durableflow import Client, WorkflowExecutionError  # noqa: E402
from durableflow.dashboard.app import Settings  # noqa: E402
from durableflow.dashboard.server import BackgroundServer  # noqa: E402

OUT = HERE.parent.parent / "docs" / "images"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def seed(root: Path) -> tuple[Client, str]:
    client = Client(str(root / "store"))
    for i in range(6):
        client.run(dashtasks.diamond(i), workflow_id=f"etl-2026-12-0{i + 1}", metadata={"day": i})
    client.run(dashtasks.outer.bind(41), workflow_id="continue-1")
    counter = str(root / "counter")
    client.run(
        dashtasks.flaky.options(max_retries=3, retry_exceptions=True).bind(counter, 2),
        workflow_id="flaky-1",
    )
    for name in ("report-7", "report-8"):
        with contextlib.suppress(WorkflowExecutionError):
            client.run(dashtasks.fail_unless.bind(str(root / "absent"), 1), workflow_id=name)
    release = str(root / "release")
    client.run_async(dashtasks.wait_file.bind(release, 5), workflow_id="backfill-3")
    client.schedule("nightly-etl", dashtasks.diamond(), cron="0 2 * * *", timezone="Europe/Paris")
    client.schedule("hourly-sync", dashtasks.source.bind(1), every="1h")
    client.fire_schedules(now=time.time() + 3600)  # its first tick: a PENDING workflow
    time.sleep(0.3)
    return client, release


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        client, release = seed(Path(tmp))
        server = BackgroundServer(Settings(storage=str(Path(tmp) / "store"), port=0)).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                shots = {
                    "home": "",
                    "list": "workflows",
                    "workflow": "workflows/etl-2026-12-06",
                    "retries": "workflows/flaky-1",
                    "task": "workflows/report-8/tasks/dashtasks.fail_unless",
                    "logs": "workflows/flaky-1/tasks/dashtasks.flaky",
                    "schedules": "schedules",
                }
                for name, path in shots.items():
                    page.goto(server.url + path)
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(OUT / f"dashboard-{name}.png"), full_page=False)
                    print("wrote", OUT / f"dashboard-{name}.png")
                browser.close()
        finally:
            server.stop()
            Path(release).touch()
            client.close()


if __name__ == "__main__":
    main()
