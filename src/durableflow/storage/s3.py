"""S3 or any S3-compatible server: ``s3://bucket/prefix?endpoint_url=...&region_name=...``.

boto3 is imported by :mod:`._s3client` only (the client, and S3's errors read and translated);
this module is the Storage. How each promise of :class:`~durableflow.storage.base.Storage`
is kept:

1. ``put`` is one PutObject: S3 never shows a partly written object.
2. ``create`` is a PutObject with ``If-None-Match: *``.
3. ``swap`` is a GetObject (the bytes and their ETag), a comparison of the bytes with
   ``expected``, then a PutObject with ``If-Match: <etag>``.
4. ``list`` follows ListObjectsV2 pages (1,000 keys each) to the last one.

A conditional write answered 404 (AWS: ``If-Match`` on a missing key), 409
(``ConditionalRequestConflict``) or 412 (``PreconditionFailed``) lost its condition and returns
False; a 409 is first retried a few times, since it means another conditional write to the key
was in flight and may itself fail. A conditional write whose first reply was lost and that
botocore retried may meet its own write and get 412: the value is then read back, and if it
holds exactly our bytes the call reports True.

Credentials come from boto3's usual chain (environment, shared files, instance role) or from
constructor arguments; they never appear in ``url``, ``repr`` or error messages. The bucket is
checked with HeadBucket when the storage is opened, so a missing bucket, refused credentials or an
unreachable endpoint fail at ``init``, not at the tenth task.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import SplitResult

from durableflow.errors import StorageError, StorageUnavailableError
from durableflow.storage import _s3client as s3client
from durableflow.storage._backend import ReopenFromURL, translate_errors
from durableflow.storage._s3client import ClientError, make_client
from durableflow.storage._s3url import S3Options, check_bucket_and_prefix, parse_s3_url
from durableflow.storage.base import MAX_KEY_LENGTH, Storage, check_key, matches_no_key

__all__ = ["S3Storage", "make_client"]

_DELETE_BATCH = 1000
_CONFLICT_RETRIES = 3


class S3Storage(ReopenFromURL, Storage):
    """Values as objects under ``prefix/`` in one S3 bucket.

    Args:
        bucket: the bucket; it must exist.
        prefix: a key prefix inside the bucket ('/'-separated, no leading or trailing '/').
        endpoint_url: an S3-compatible server, e.g. ``http://127.0.0.1:9000``; None for AWS.
        region_name: the bucket's region; None lets boto3 decide.
        addressing_style: ``path``, ``virtual`` or ``auto``; ``path`` when ``endpoint_url`` is
            given, else boto3's default.
        profile_name: a profile of the shared AWS config files.
        max_attempts: attempts per request, retried with backoff on throttling, 5xx and
            connection errors.
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for each read from a connection.
        aws_access_key_id: explicit credentials (else the boto3 chain); never stored or shown.
        aws_secret_access_key: see ``aws_access_key_id``.
        aws_session_token: see ``aws_access_key_id``.
        max_workers: threads used by ``put_many`` to write several values at once.

    Raises:
        StorageURLError: bad bucket, prefix or parameter, missing bucket, no credentials.
        StorageUnavailableError: the endpoint cannot be reached or refused the credentials.

    A pickled copy reopens from ``url``: explicit credentials are never pickled, the boto3
    chain of the process that unpickles it supplies them.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        addressing_style: str | None = None,
        profile_name: str | None = None,
        max_attempts: int = 5,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        max_workers: int = 8,
    ) -> None:
        self._prefix = check_bucket_and_prefix(bucket, prefix)
        self._options = S3Options(
            endpoint_url,
            region_name,
            addressing_style,
            profile_name,
            max_attempts,
            connect_timeout,
            read_timeout,
        ).checked()
        self._bucket = bucket
        self._base = f"{self._prefix}/" if self._prefix else ""
        self._max_workers = max(1, max_workers)
        self._where = f"bucket {bucket!r} at " + (
            f"endpoint {endpoint_url}"
            if endpoint_url
            else f"AWS S3 ({region_name or 'default region'})"
        )
        self._client = make_client(
            **self._options.as_kwargs(),
            max_pool_connections=max(16, self._max_workers * 2),
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
        )
        self._check_bucket()

    @classmethod
    def from_url(cls, parts: SplitResult, *, create: bool = True) -> S3Storage:
        """Open ``s3://bucket[/prefix][?endpoint_url=...&region_name=...&...]``.

        Query parameters: ``endpoint_url``, ``region_name``, ``addressing_style``
        (``path`` | ``virtual`` | ``auto``), ``profile_name``, ``max_attempts``,
        ``connect_timeout``, ``read_timeout``. Credentials are never accepted in the URL.
        ``create`` changes nothing: durableflow never creates a bucket, and a missing one
        raises "no durableflow storage at ..." either way.
        """
        del create
        bucket, prefix, options = parse_s3_url(parts)
        return cls(bucket, prefix, **options)

    @property
    def url(self) -> str:
        """``s3://bucket/prefix`` with every non-default parameter; never credentials."""
        return self._options.render(self._bucket, self._prefix)

    @property
    def bucket(self) -> str:
        """The bucket that holds the values."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """The key prefix inside the bucket, without a trailing '/'."""
        return self._prefix

    # -- operations ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """GetObject; a missing key (not a missing bucket) gives None."""
        name = self._name(key)
        with self._errors("read", key):
            try:
                response = self._client.get_object(Bucket=self._bucket, Key=name)
            except ClientError as err:
                if s3client.is_missing_key(err):
                    return None
                raise
            return bytes(response["Body"].read())

    def put(self, key: str, data: bytes) -> None:
        """One PutObject, atomic on S3."""
        name = self._name(key)
        with self._errors("write", key):
            self._client.put_object(Bucket=self._bucket, Key=name, Body=bytes(data))

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """PutObjects from a few threads at once; the first failure is raised."""
        # Concurrent writes of one key would race: keep only its last value, as a loop would.
        pending: dict[str, bytes] = {}
        for key, data in items:
            self._name(key)  # refuse an illegal key before anything is written
            pending[key] = bytes(data)
        if len(pending) <= 1 or self._max_workers == 1:
            for key, data in pending.items():
                self.put(key, data)
            return
        with ThreadPoolExecutor(min(self._max_workers, len(pending))) as pool:
            # list() re-raises the first failure after every write has been attempted.
            list(pool.map(lambda item: self.put(*item), pending.items()))

    def create(self, key: str, data: bytes) -> bool:
        """PutObject with ``If-None-Match: *``."""
        return self._conditional_put(key, bytes(data), IfNoneMatch="*")

    def swap(self, key: str, expected: bytes, data: bytes) -> bool:
        """GetObject, compare the bytes, then PutObject with ``If-Match`` on the ETag read."""
        name = self._name(key)
        with self._errors("read", key):
            try:
                response = self._client.get_object(Bucket=self._bucket, Key=name)
            except ClientError as err:
                if s3client.is_missing_key(err):
                    return False
                raise
            current = response["Body"].read()
            etag = response["ETag"]
        if current != expected:
            return False
        return self._conditional_put(key, bytes(data), IfMatch=etag)

    def delete(self, key: str) -> None:
        """DeleteObject; a missing key is not an error."""
        name = self._name(key)
        with self._errors("delete", key):
            try:
                self._client.delete_object(Bucket=self._bucket, Key=name)
            except ClientError as err:
                if not s3client.is_missing_key(err):
                    raise

    def list(self, prefix: str) -> list[str]:
        """ListObjectsV2, every page."""
        if matches_no_key(prefix):
            # SeaweedFS folds '//' into '/', so such a prefix would find other keys.
            return []
        keys: list[str] = []
        start = len(self._base)
        with self._errors("list", prefix):
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._base + prefix):
                keys.extend(item["Key"][start:] for item in page.get("Contents", ()))
        keys.sort()
        return keys

    def delete_prefix(self, prefix: str) -> None:
        """List, then DeleteObjects in batches of 1,000 keys."""
        keys = self.list(prefix)
        for first in range(0, len(keys), _DELETE_BATCH):
            batch = keys[first : first + _DELETE_BATCH]
            with self._errors("delete", prefix):
                response = self._client.delete_objects(
                    Bucket=self._bucket,
                    Delete={"Objects": [{"Key": self._base + k} for k in batch], "Quiet": True},
                )
            errors = response.get("Errors", ())
            failed = [e for e in errors if not s3client.is_missing_key_name(e.get("Code"))]
            if failed:
                key = str(failed[0].get("Key", ""))[len(self._base) :]
                raise StorageUnavailableError(
                    f"cannot delete {len(failed)} key(s) under {prefix!r} in {self._where}: "
                    f"{failed[0].get('Code')} {failed[0].get('Message', '')}",
                    key=key,
                )

    @property
    def ordered(self) -> bool:
        """True: every write is durable when it returns (``volatile`` changes nothing here)."""
        return True

    def close(self) -> None:
        """Close the client's connection pool."""
        with contextlib.suppress(Exception):
            self._client.close()

    # -- helpers ------------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        name = self._base + check_key(key)
        if len(name.encode()) > MAX_KEY_LENGTH:
            raise ValueError(f"storage key is longer than S3 allows with prefix: {key!r}")
        return name

    def _conditional_put(self, key: str, data: bytes, **condition: str) -> bool:
        name = self._name(key)
        for attempt in range(_CONFLICT_RETRIES + 1):
            with self._errors("write", key):
                try:
                    self._client.put_object(Bucket=self._bucket, Key=name, Body=data, **condition)
                    return True
                except ClientError as err:
                    if not s3client.is_lost_condition(err):
                        raise
                    if s3client.retried(err):
                        # Our own first attempt may have landed before its reply was lost.
                        return self.get(key) == data
                    if s3client.status(err) != 409 or attempt == _CONFLICT_RETRIES:
                        return False
            time.sleep(0.05 * (attempt + 1))
        return False  # pragma: no cover - the loop always returns

    def _errors(self, action: str, key: str) -> contextlib.AbstractContextManager[None]:
        return translate_errors(s3client.CAUGHT, self._translate, action, key)

    def _translate(self, err: Exception, action: str, key: str | None) -> StorageError:
        return s3client.translate(err, self._where, action, key)

    def _check_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except s3client.CAUGHT as err:
            raise s3client.bucket_error(err, self._where, self.url) from err
