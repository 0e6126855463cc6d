"""A directory on a local or shared (NFS) file system: ``/path`` or ``file:///path``.

Durability protocol of one write (``put``), each step a fault-test point:

1. write the bytes to a temporary file ``.tmp-*`` beside the target;
2. fsync the temporary file;
3. rename it over the target (atomic on POSIX and on NFS);
4. fsync the directory, so the rename itself survives a power cut.

A create-only write (``create``) replaces step 3 by ``link(tmp, target)``, which fails if the
target exists (atomic on NFS too, unlike ``O_EXCL`` on old clients), then unlinks the temporary.
Compare-and-swap (``swap``) holds a POSIX ``lockf`` lock (honoured over NFSv4) on a lock file
while it reads, compares and renames.

``?fsync=false`` skips steps 2 and 4: a value then survives a killed process but not a power cut.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, unquote

from durableflow.errors import (
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    StorageURLError,
)
from durableflow.storage.base import Storage, check_key

__all__ = ["FileStorage"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _os_error(err: OSError, key: str, action: str) -> StorageError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"no space left to {action} {key!r}: {err}", key=key)
    return StorageUnavailableError(f"cannot {action} {key!r}: {err}", key=key)


class FileStorage(Storage):
    """Values as files under a root directory."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        path = Path(root).expanduser()
        try:
            path = path.resolve()
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageURLError(f"cannot use {str(path)!r} as storage: {err}") from err
        if not path.is_dir():
            raise StorageURLError(f"storage path {str(path)!r} is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise StorageURLError(f"storage directory {str(path)!r} is not writable")
        self._root = path
        self._fsync = fsync
        self._known_dirs: set[Path] = {path}
        self._dirs_lock = threading.Lock()

    @classmethod
    def from_url(cls, parts: SplitResult) -> FileStorage:
        """Open ``file:///path[?fsync=false]`` or a plain path (``parts.scheme`` empty)."""
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            raise StorageURLError(
                f"file URL must be file:///absolute/path, got host {parts.netloc!r}"
            )
        path = unquote(parts.path)
        if not path:
            raise StorageURLError("file storage URL has no path")
        options = parse_qs(parts.query)
        fsync = True
        for name, values in options.items():
            if name != "fsync":
                raise StorageURLError(f"unknown file storage parameter {name!r}")
            value = values[-1].lower()
            if value not in _TRUE | _FALSE:
                raise StorageURLError(f"fsync must be true or false, got {values[-1]!r}")
            fsync = value in _TRUE
        return cls(path, fsync=fsync)

    @property
    def root(self) -> Path:
        """The directory that holds the values."""
        return self._root

    @property
    def url(self) -> str:
        return f"file://{self._root}" + ("" if self._fsync else "?fsync=false")

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*check_key(key).split("/"))

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        missing = []
        probe = directory
        while probe not in self._known_dirs and not probe.is_dir():
            missing.append(probe)
            probe = probe.parent
        for new_dir in reversed(missing):
            with contextlib.suppress(FileExistsError):
                new_dir.mkdir()
            if self._fsync:
                self._fsync_dir(new_dir.parent)
        with self._dirs_lock:
            self._known_dirs.add(directory)

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_temp(self, target: Path, data: bytes) -> Path:
        self._ensure_dir(target.parent)
        tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name[:40]}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self._fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    def get(self, key: str) -> bytes | None:
        try:
            with open(self._path(key), "rb") as handle:
                return handle.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as err:
            raise _os_error(err, key, "read") from err

    def put(self, key: str, data: bytes) -> None:
        self.put_many([(key, data)])

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        dirs: set[Path] = set()
        for key, data in items:
            target = self._path(key)
            try:
                tmp = self._write_temp(target, data)
                os.replace(tmp, target)
            except OSError as err:
                raise _os_error(err, key, "write") from err
            dirs.add(target.parent)
        if self._fsync:
            for directory in dirs:
                self._fsync_dir(directory)

    def create(self, key: str, data: bytes) -> bool:
        target = self._path(key)
        try:
            tmp = self._write_temp(target, data)
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
            if self._fsync:
                self._fsync_dir(target.parent)
        except OSError as err:
            raise _os_error(err, key, "create") from err
        return True

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        target = self._path(key)
        lock_dir = self._root / ".locks"
        lock_dir.mkdir(exist_ok=True)
        lock_path = lock_dir / hashlib.sha256(key.encode()).hexdigest()[:32]
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise _os_error(err, key, "lock") from err
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            if self.get(key) != expected:
                return False
            try:
                tmp = self._write_temp(target, data)
                os.replace(tmp, target)
            except OSError as err:
                raise _os_error(err, key, "write") from err
            if self._fsync:
                self._fsync_dir(target.parent)
            return True
        finally:
            os.close(fd)  # closing releases the lock

    def delete(self, key: str) -> None:
        target = self._path(key)
        try:
            target.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as err:
            raise _os_error(err, key, "delete") from err
        if self._fsync:
            self._fsync_dir(target.parent)

    def list(self, prefix: str) -> list[str]:
        head, _, name_prefix = prefix.rpartition("/")
        base = self._root.joinpath(*head.split("/")) if head else self._root
        keys: list[str] = []
        try:
            entries = list(os.scandir(base))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            raise _os_error(err, prefix, "list") from err
        key_head = f"{head}/" if head else ""
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.startswith(name_prefix):
                continue
            if entry.is_dir(follow_symlinks=False):
                keys.extend(self._walk(Path(entry.path), f"{key_head}{entry.name}/"))
            else:
                keys.append(f"{key_head}{entry.name}")
        keys.sort()
        return keys

    def _walk(self, directory: Path, key_prefix: str) -> builtins.list[str]:
        keys: builtins.list[str] = []
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, directory)
            sub = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            keys.extend(f"{key_prefix}{sub}{f}" for f in filenames if not f.startswith("."))
        return keys

    def delete_prefix(self, prefix: str) -> None:
        if prefix.endswith("/"):
            directory = self._root.joinpath(*prefix.rstrip("/").split("/"))
            if directory.is_dir():
                # Rename first so a crash mid-removal leaves nothing under the old name.
                trash = self._root / f".trash-{uuid.uuid4().hex}"
                try:
                    os.replace(directory, trash)
                except FileNotFoundError:
                    return
                except OSError as err:
                    raise _os_error(err, prefix, "delete") from err
                with self._dirs_lock:
                    self._known_dirs = {
                        d for d in self._known_dirs if not d.is_relative_to(directory)
                    }
                if self._fsync:
                    self._fsync_dir(directory.parent)
                shutil.rmtree(trash, ignore_errors=True)
            return
        super().delete_prefix(prefix)
