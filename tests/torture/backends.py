"""Storage URLs of the torture rounds: a fresh file, SQLite or S3 storage per round."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from durableflow.testing.s3server import S3Server

UrlFactory = Callable[[str, Path], str]


def file_url(name: str, rdir: Path) -> str:
    """A directory inside the round's scratch directory."""
    return str(rdir / "store")


def sqlite_url(name: str, rdir: Path) -> str:
    """A database file inside the round's scratch directory."""
    return f"sqlite://{rdir / 'wf.db'}"


def s3_urls(server: S3Server, run: str) -> UrlFactory:
    """A prefix of its own in the server's bucket, per round."""

    def make(name: str, rdir: Path) -> str:
        return server.url(f"torture/{run}/{name}")

    return make


def factories(server: S3Server | None, run: str) -> dict[str, UrlFactory]:
    """The URL factory of each backend (S3 only with a server)."""
    urls: dict[str, UrlFactory] = {"file": file_url, "sqlite": sqlite_url}
    if server is not None:
        urls["s3"] = s3_urls(server, run)
    return urls
