"""A directory on a local or shared (NFS) file system: ``/path`` or ``file:///path``.

Durability protocol of one write (``put``), each step a fault-test point:

1. write the bytes to a temporary file ``.tmp-*`` beside the target;
2. fsync the temporary file;
3. rename it over the target (atomic on POSIX and on NFS);
4. fsync the directory, so the rename itself survives a power cut. Threads that need the same
   directory synced at once share the fsyncs (group commit: ``_filelocks.DirectorySyncs``).

The machinery of steps 1, 2 and 4 and of the scopes below is in ``_filewrites.DurableWrites``.

A create-only write (``create``) replaces step 3 by ``link(tmp, target)``, which fails if the
target exists (atomic on NFS too, unlike ``O_EXCL`` on old clients), then unlinks the temporary.
Compare-and-swap (``swap``) holds the key's lock, a POSIX ``lockf`` lock (honoured over NFSv4)
on a lock file, while it reads, compares and renames; ``delete`` holds the same lock while it
unlinks, so a delete never interleaves with a swap re-creating the key. ``put`` and ``create``
take no lock (a rename and a link are atomic on their own).

``?fsync=false`` skips steps 2 and 4: a value then survives a killed process but not a power cut.

An empty value needs neither a temporary file nor step 2: it is created in place with
``O_CREAT | O_EXCL`` (an empty file is complete the moment it exists), then step 4. If the key
already exists, the write goes through steps 1-4 (``put``) or returns False (``create``).

A new directory on a value's path is fsynced into its parent (its step 4) together with the
value's own step 4, at the end of the write.

Durability scopes (:meth:`FileStorage.batch`, :meth:`FileStorage.volatile`), per thread:

- in a ``batch`` block, step 2 is done at once, and step 4 (and the fsync of the parent of a
  new directory) is done once per directory when the block exits, the fsyncs of the
  directories side by side (``DirectorySyncs.sync_all``: one journal commit on ext4 instead of a
  commit and a cache flush each): the writes of the block are durable together when it returns;
- in a ``volatile`` block, steps 2 and 4 are skipped, as with ``?fsync=false``.
"""

from __future__ import annotations

import builtins
import errno
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import SplitResult, unquote

from durableflow.errors import StorageError, StorageURLError
from durableflow.storage._backend import (
    ReopenFromURL,
    parse_bool_option,
    storage_error,
    url_options,
)
from durableflow.storage._filelocks import key_lock
from durableflow.storage._filewrites import DurableWrites
from durableflow.storage.base import Storage, check_key, folder_start, matches_no_key

__all__ = ["FileStorage"]


def _os_error(err: OSError, key: str, action: str) -> StorageError:
    return storage_error(err.errno in (errno.ENOSPC, errno.EDQUOT), action, key, None, err)


def _lock_error(err: OSError, key: str) -> StorageError:
    return _os_error(err, key, "lock")


class FileStorage(DurableWrites, ReopenFromURL, Storage):
    """Values as files under a root directory.

    Args:
        root: the directory; with ``create`` it and its parents are made if missing.
        fsync: False skips the fsyncs (steps 2 and 4): values survive a killed process only.
        create: False opens an existing directory only (read-only commands: a mistyped path
            must not become an empty storage); it need not be writable then.

    Raises:
        StorageURLError: the path cannot hold a storage, or (``create`` False) does not exist.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, fsync: bool = True, create: bool = True
    ) -> None:
        path = Path(root).expanduser()
        try:
            path = path.resolve()
            if create:
                path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageURLError(f"cannot use {str(path)!r} as storage: {err}") from err
        if not create and not path.exists():
            raise StorageURLError(
                f"no durableflow storage at {path}: the directory does not exist "
                "(only commands that write create a storage)"
            )
        if not path.is_dir():
            raise StorageURLError(f"storage path {str(path)!r} is not a directory")
        if create and not os.access(path, os.W_OK | os.X_OK):
            raise StorageURLError(f"storage directory {str(path)!r} is not writable")
        super().__init__(path, fsync)

    @classmethod
    def from_url(cls, parts: SplitResult, *, create: bool = True) -> FileStorage:
        """Open ``file:///path[?fsync=false]`` or a plain path (``parts.scheme`` empty).

        ``create`` False: the directory must exist (see the class).
        """
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            raise StorageURLError(
                f"file URL must be file:///absolute/path, got host {parts.netloc!r}"
            )
        path = unquote(parts.path)
        if not path:
            raise StorageURLError("file storage URL has no path")
        options = url_options(parts.query, {"fsync": bool}, scheme="file")
        fsync = parse_bool_option("fsync", options.get("fsync", "true"))
        return cls(path, fsync=fsync, create=create)

    @property
    def root(self) -> Path:
        """The directory that holds the values."""
        return self._root

    @property
    def url(self) -> str:
        return f"file://{self._root}" + ("" if self._fsync else "?fsync=false")

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*check_key(key).split("/"))

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
        with self.batch():  # each directory once, a new one's parent with the rest
            for key, data in items:
                target = self._path(key)
                try:
                    if not (not data and self._create_empty(target)):
                        tmp = self._write_temp(target, data)
                        os.replace(tmp, target)
                except OSError as err:
                    raise _os_error(err, key, "write") from err
                self._sync_dir(target.parent)

    def create(self, key: str, data: bytes) -> bool:
        with self.batch():  # a new directory's parent is synced with the value's directory
            return self._create(key, data)

    def _create(self, key: str, data: bytes) -> bool:
        target = self._path(key)
        try:
            if not data:
                if not self._create_empty(target):
                    return False
            else:
                tmp = self._write_temp(target, data)
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    return False
                finally:
                    tmp.unlink(missing_ok=True)
            self._sync_dir(target.parent)
        except OSError as err:
            raise _os_error(err, key, "create") from err
        return True

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        """Read, compare and replace while holding the key's lock (``_filelocks.key_lock``)."""
        target = self._path(key)
        with key_lock(self._root, key, _lock_error):
            if self.get(key) != expected:
                return False
            try:
                tmp = self._write_temp(target, data)
                os.replace(tmp, target)
            except OSError as err:
                raise _os_error(err, key, "write") from err
            self._sync_dir(target.parent)
            return True

    def delete(self, key: str) -> None:
        """Unlink the key's file while holding its lock, so no swap interleaves.

        Without the lock a swap that had read the expected value could rename its new value
        over the path after the unlink: the key would come back after ``delete`` returned.
        """
        target = self._path(key)
        with key_lock(self._root, key, _lock_error, remove=True):
            try:
                target.unlink()
            except (FileNotFoundError, NotADirectoryError):
                return
            except OSError as err:
                raise _os_error(err, key, "delete") from err
        self._sync_dir(target.parent)

    def list(self, prefix: str) -> list[str]:
        if matches_no_key(prefix):
            return []
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

    def list_children(self, folder: str) -> builtins.list[str]:
        """The file names of the folder's directory (hidden ones and subdirectories left out).

        ``os.listdir`` when the directory has no subdirectory, which its link count says on
        the file systems that count them (2: itself and its entry; ext4, XFS...), read after
        the listing: no DirEntry objects, no type checks. Otherwise ``os.scandir`` skipping
        the directories.
        """
        folder_start(folder)
        if matches_no_key(folder):
            return []
        directory = os.path.join(self._root, *folder[:-1].split("/"))
        try:
            names = os.listdir(directory)
            if os.stat(directory).st_nlink != 2:
                names = [
                    entry.name
                    for entry in os.scandir(directory)
                    if not entry.is_dir(follow_symlinks=False)
                ]
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            raise _os_error(err, folder, "list") from err
        names = [name for name in names if name[0] != "."]
        names.sort()
        return names

    def _walk(self, directory: Path, key_prefix: str) -> builtins.list[str]:
        keys: builtins.list[str] = []
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, directory)
            sub = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            keys.extend(f"{key_prefix}{sub}{f}" for f in filenames if not f.startswith("."))
        return keys

    def delete_prefix(self, prefix: str) -> None:
        if matches_no_key(prefix):
            return
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
                self._forget_below(directory)
                self._sync_dir(directory.parent)
                shutil.rmtree(trash, ignore_errors=True)
            return
        super().delete_prefix(prefix)
