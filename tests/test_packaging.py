"""The package builds and installs from its own files (issue 10.16).

``python -m build`` makes an sdist, then a wheel *from that sdist* (so the sdist must hold all the
build needs); the wheel is installed in a fresh virtualenv, with the ``cli`` and ``s3`` extras,
and must import and run ``durableflow --help`` and a workflow there. Every extra the README and
docs name must be one the package declares. About 20-40 s, most of it the build and the install
(uv resolves from its cache; pip is the fallback).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _run(*command: str | Path, cwd: Path | None = None, stderr: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=540
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + (done.stderr if stderr else "")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel built from a copy of the project's files."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "*.egg-info", "build", "dist", "__pycache__", ".venv", "venv", ".*_cache"
        ),
    )
    out = base / "dist"
    # With setuptools and wheel installed here (the test extra), build needs no download.
    isolation = ["--no-isolation"] if _has_build_backend() else []
    _run(sys.executable, "-m", "build", *isolation, "--outdir", out, source)
    return out


def _has_build_backend() -> bool:
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
    except ImportError:
        return False
    return True


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("durableflow-*.whl")
    return wheel


def _metadata(dist: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(_wheel(dist)) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(name).decode())
    return {key: message.get_all(key) or [] for key in ("Provides-Extra", "Requires-Dist")}


def test_sdist_holds_what_the_build_needs_and_the_package_data(dist: Path):
    (sdist,) = dist.glob("durableflow-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in (
        "pyproject.toml",
        "README.md",
        "src/durableflow/__init__.py",
        "src/durableflow/py.typed",
        "src/durableflow/cli/__main__.py",
    ):
        assert needed in names, needed


def test_wheel_holds_the_package_and_its_marker_only(dist: Path):
    with zipfile.ZipFile(_wheel(dist)) as archive:
        names = archive.namelist()
    assert "durableflow/py.typed" in names
    assert "durableflow/cli/__init__.py" in names
    assert "durableflow/testing/contract.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/"))]
    entry_points = [n for n in names if n.endswith("entry_points.txt")]
    assert entry_points
    with zipfile.ZipFile(_wheel(dist)) as archive:
        assert "durableflow = durableflow.cli:main" in archive.read(entry_points[0]).decode()


def test_every_extra_the_docs_name_is_declared(dist: Path):
    declared = set(_metadata(dist)["Provides-Extra"])
    assert {"s3", "ray", "cli", "test", "dev"} <= declared
    named: set[str] = set()
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = page.read_text(encoding="utf-8")
        for group in re.findall(r"(?:durableflow|['\"]\.|\.whl)\[([a-z0-9_,\s-]+)\]", text):
            named |= {name.strip() for name in group.split(",")}
    assert named, "the docs name no extra"
    assert named <= declared, f"named but not declared: {sorted(named - declared)}"


def test_docs_install_only_what_can_be_installed():
    """No install line names the package on an index: it is installed from a clone or git."""
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = page.read_text(encoding="utf-8")
        for line in re.findall(r"pip install ([^\n`#]*)", text):
            words = [w.strip("'\"") for w in line.split()]
            for i, word in enumerate(words):
                if re.fullmatch(r"durableflow(\[[^\]]*\])?", word):
                    assert words[i + 1 : i + 2] == ["@"], (page.name, line)


def test_the_wheel_installs_and_runs_in_a_fresh_virtualenv(dist: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    wheel = _wheel(dist)
    uv = shutil.which("uv")
    if uv:
        _run(uv, "venv", "-q", "--python", sys.executable, venv)
        _run(uv, "pip", "install", "-q", "--python", python, f"{wheel}[cli,s3]")
    else:
        _run(sys.executable, "-m", "venv", venv)
        _run(python, "-m", "pip", "install", "-q", f"{wheel}[cli,s3]")
    if uv:  # the ray extra resolves too (not installed: Ray is 300 MB)
        plan = _run(
            uv, "pip", "install", "--dry-run", "--python", python, f"{wheel}[ray]", stderr=True
        )
        assert re.search(r"\+ ray==\d", plan), plan
    where = _run(
        python,
        "-c",
        "import durableflow, durableflow.cli, boto3, rich; print(durableflow.__file__)",
        cwd=tmp_path,
    )
    assert where.strip().startswith(str(venv)), where  # the installed copy, not the source tree
    assert "Operate durableflow workflows" in _run(venv / "bin" / "durableflow", "--help")
    program = (
        "from durableflow import Client, workflow\n"
        "@workflow.task\n"
        "def add(a, b):\n"
        "    return a + b\n"
        "with Client('store') as client:\n"
        "    print(client.run(add.bind(1, 2), workflow_id='w'))\n"
    )
    assert _run(python, "-c", program, cwd=tmp_path).strip() == "3"
    listed = _run(
        venv / "bin" / "durableflow", "--storage", "store", "list", "--json", cwd=tmp_path
    )
    assert '"workflow_id": "w"' in listed
