"""Every ```python block of README.md and docs/*.md runs as written (issue 10.18).

Each block runs in a fresh interpreter, in a fresh working directory with its own
``$DURABLEFLOW_STORAGE``, with a timeout. The line right before a fence may mark the block:

- ``<!-- fragment: why -->``: not run (a piece of a larger program, or it needs a Ray cluster
  and an S3 bucket); the reason is required.
- ``<!-- file: NAME.py -->``: the block is a module the page's other blocks import; it is saved
  as ``NAME.py`` in the working directory of every block of its page, and run itself too.

``console`` and ``bash`` blocks are not run. The README's storage recipe is also run against the
storage contract suite, and the README's development command must be the one ``.ci/run`` runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_MARK = re.compile(r"^<!--\s*(fragment|file):\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    code: str
    fragment: str | None  # the reason, for a fragment
    file: str | None  # the module name, for a file block

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def python_blocks(page: Path) -> list[Block]:
    """The ```python blocks of ``page`` with their marks."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = lines[i].strip()
        if fence.startswith("```"):
            lang = fence[3:].strip()
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if lang == "python":
                mark = _MARK.match(lines[i - 1].strip()) if i else None
                kind, value = (mark.group(1), mark.group(2)) if mark else (None, None)
                blocks.append(
                    Block(
                        page,
                        i + 1,
                        "\n".join(lines[i + 1 : end]) + "\n",
                        value if kind == "fragment" else None,
                        value if kind == "file" else None,
                    )
                )
            i = end + 1
        else:
            i += 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in python_blocks(page)]


def run_block(block: Block, workdir: Path) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    for other in python_blocks(block.page):
        if other.file:
            (workdir / other.file).write_text(other.code, encoding="utf-8")
    script = workdir / (block.file or "block.py")
    script.write_text(block.code, encoding="utf-8")
    env = dict(os.environ)
    env["DURABLEFLOW_STORAGE"] = str(workdir / "store")
    env.pop("RAY_WORKFLOW_STORAGE", None)
    env["PYTHONPATH"] = str(workdir)
    return subprocess.run(
        [sys.executable, script.name],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_pages_have_python_blocks_and_every_fragment_says_why():
    assert len(ALL_BLOCKS) >= 8
    for block in ALL_BLOCKS:
        if block.fragment is not None:
            assert len(block.fragment) > 10, f"{block.name}: say why it is a fragment"
        if block.file is not None:
            assert re.fullmatch(r"\w+\.py", block.file), block.name


@pytest.mark.parametrize(
    "block",
    [b for b in ALL_BLOCKS if b.fragment is None],
    ids=lambda b: b.name,
)
def test_python_block_runs_as_written(block: Block, tmp_path: Path):
    done = run_block(block, tmp_path / "work")
    assert done.returncode == 0, f"{block.name} failed:\n{block.code}\n--- stderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr


def _file_block(name: str) -> Block:
    (block,) = [b for b in python_blocks(ROOT / "README.md") if b.file == name]
    return block


@pytest.mark.slow
def test_readme_storage_recipe_passes_the_contract_suite(tmp_path: Path):
    for name in ("kvstorage.py", "test_kvstorage.py"):
        (tmp_path / name).write_text(_file_block(name).code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_kvstorage.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) >= 35, done.stdout[-2000:]
    assert "failed" not in done.stdout and "error" not in done.stdout.splitlines()[-1]


def test_readme_storage_recipe_works_as_a_client_storage(tmp_path: Path):
    program = (
        "import kvstorage\n"
        "from durableflow import Client, workflow\n"
        "@workflow.task\n"
        "def add(a, b):\n"
        "    return a + b\n"
        f"url = 'kv://{tmp_path}/wf.db'\n"
        "with Client(url) as client:\n"
        "    assert client.run(add.bind(1, 2), workflow_id='w') == 3\n"
        "with Client(url) as client:\n"
        "    assert client.get_output('w') == 3 and client.storage.url == url\n"
        "print('ok')\n"
    )
    (tmp_path / "kvstorage.py").write_text(_file_block("kvstorage.py").code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


def _readme_dev_checks() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Development") :]
    (line,) = [ln for ln in section.splitlines() if ln.startswith("ruff check")]
    return line


def test_readme_development_command_is_what_ci_runs():
    checks = _readme_dev_checks().split(" && ")
    assert checks[-1] == "python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ci_commands = [ln.strip() for ln in ci if ln.strip() and not ln.strip().startswith("#")]
    for check in checks[:-1]:
        assert check in ci_commands, f"{check!r} is not run by .ci/run"
    assert any(ln.startswith("python -m pytest") for ln in ci_commands)
    # Markdown is not given to ruff (it would format code blocks): only the Python folders.
    assert all(" . " not in f" {c} " for c in checks), checks


def test_demo_does_what_its_docstring_says(tmp_path: Path):
    """Resume never redoes extract and transform; a second run starts a new workflow."""
    demo = ROOT / "examples" / "demo.py"
    doc = demo.read_text(encoding="utf-8").split('"""')[1]
    assert "Run it twice" not in doc or "new workflow id" in doc
    env = dict(os.environ, DURABLEFLOW_STORAGE=str(tmp_path / "store"))
    env.pop("DEMO_WAREHOUSE", None)
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, str(demo)], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    for out in outputs:
        assert out.count("extract(2026-11-27) runs") == 1, out
        assert out.count("transform runs") == 1, out
        assert out.count("load runs") == 2, out
        assert "result: loaded 8 rows, total 310" in out, out
    ids = [re.findall(r"run '(demo-[^']+)'", out) for out in outputs]
    assert ids[0] and ids[1] and ids[0] != ids[1]
