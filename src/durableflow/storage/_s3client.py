"""boto3 for :class:`~durableflow.storage.s3.S3Storage`: the client, and S3's answers read.

The only module that imports boto3 (and botocore). It builds the S3 client (bounded retries,
timeouts, addressing style, one shared botocore data loader), reads what an S3 error says
(its code, HTTP status, whether botocore retried it, a lost condition, a missing key), and
translates it into the :class:`~durableflow.errors.StorageError` the engine understands: a
missing bucket, a full server, refused or missing credentials, a bad parameter, anything else
unavailable. Messages never quote credentials.
"""

from __future__ import annotations

import threading
from typing import Any

from durableflow.errors import (
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    StorageURLError,
)

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    import botocore.session
except ImportError:  # pragma: no cover - exercised only without the extra
    boto3 = None

__all__ = [
    "CAUGHT",
    "ClientError",
    "bucket_error",
    "is_lost_condition",
    "is_missing_key",
    "make_client",
    "retried",
    "status",
    "translate",
]

_INSTALL_HINT = (
    "s3:// storage needs boto3: pip install boto3 (or the s3 extra: pip install '.[s3]' in a "
    "clone of durableflow)"
)
_LOST_CONDITION = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409"}
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
_FULL = {"QuotaExceeded", "InsufficientStorage", "StorageFull", "EntityTooLarge", "507"}
_WHERE_CREDENTIALS = (
    "boto3 looks for them in this order: the environment (AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), the shared files ~/.aws/credentials and "
    "~/.aws/config (a profile there: ?profile_name=... in the URL), then a container or "
    "instance role"
)

ClientError: type[Exception]
"""botocore's error for an answer of the server (an exception class that is never raised
when boto3 is missing: no client can be made then)."""
CAUGHT: tuple[type[Exception], ...]
"""What an S3 call may raise that :func:`translate` turns into a StorageError."""
if boto3 is not None:
    ClientError = botocore.exceptions.ClientError
    CAUGHT = (ClientError, botocore.exceptions.BotoCoreError, OSError)
else:  # pragma: no cover - exercised only without the extra
    ClientError = type("ClientError", (Exception,), {})
    CAUGHT = (OSError,)


# One botocore data loader per process: each new session would otherwise parse the S3 service
# model again (~0.1 s per storage opened, ~0.02 s with the shared loader).
_LOADER_LOCK = threading.Lock()
_loader: Any = None


def _new_session(**kwargs: Any) -> Any:
    global _loader
    core = botocore.session.Session()
    with _LOADER_LOCK:
        if _loader is None:
            _loader = core.get_component("data_loader")
        else:
            core.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=core, **kwargs)


def make_client(
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    addressing_style: str | None = None,
    profile_name: str | None = None,
    max_attempts: int = 5,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    max_pool_connections: int = 16,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    aws_session_token: str | None = None,
) -> Any:
    """Build the boto3 S3 client durableflow uses: bounded retries, timeouts, addressing.

    Also used by :mod:`durableflow.testing.s3server` to create buckets (through
    :mod:`durableflow.storage.s3`, which re-exports it).

    Raises:
        StorageURLError: boto3 is missing, the profile is unknown, or a parameter is invalid.
    """
    if boto3 is None:
        raise StorageURLError(_INSTALL_HINT)
    s3_options = {"addressing_style": addressing_style} if addressing_style else None
    config = botocore.config.Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
        s3=s3_options,
    )
    try:
        session = _new_session(
            profile_name=profile_name,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
        )
        return session.client(
            "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
        )
    except botocore.exceptions.BotoCoreError as err:
        raise StorageURLError(f"cannot configure an S3 client: {err}") from err
    except ValueError as err:  # botocore rejects a malformed endpoint_url this way
        raise StorageURLError(f"bad S3 endpoint_url {endpoint_url!r}: {err}") from err


def code(err: Any) -> str:
    """The error code of an S3 answer (``NoSuchKey``...), or ''."""
    return str(err.response.get("Error", {}).get("Code", ""))


def status(err: Any) -> int:
    """The HTTP status of an S3 answer, or 0."""
    return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def retried(err: Any) -> bool:
    """Whether botocore sent the request again before this answer."""
    return int(err.response.get("ResponseMetadata", {}).get("RetryAttempts") or 0) > 0


def is_missing_key(err: Any) -> bool:
    """Whether the answer says the key is missing (not the bucket)."""
    return code(err) in _MISSING_KEY or (status(err) == 404 and code(err) != "NoSuchBucket")


def is_lost_condition(err: Any) -> bool:
    """Whether a conditional write lost its condition.

    404 (AWS: ``If-Match`` on a missing key), 409 (another conditional write to the key was in
    flight) or 412 (the condition failed); a missing bucket is not one.
    """
    lost = code(err) in _LOST_CONDITION or status(err) in (404, 409, 412)
    return lost and code(err) != "NoSuchBucket"


def is_missing_key_name(name: object) -> bool:
    """Whether a DeleteObjects error code says the key was missing (not an error to us)."""
    return name in _MISSING_KEY


def translate(err: Exception, where: str, action: str, key: str | None) -> StorageError:
    """The StorageError for an S3 call's error, saying ``cannot <action> <key> in <where>``."""
    said = (
        f"cannot {action} {key!r} in {where}" if key is not None else f"cannot {action} S3 {where}"
    )
    if isinstance(err, ClientError):
        name, http = code(err), status(err)
        if name == "NoSuchBucket":
            return StorageUnavailableError(f"{said}: the bucket does not exist", key=key)
        if name in _FULL or http == 507:
            return StorageFullError(f"{said}: the server has no space ({name})", key=key)
        if http in (401, 403):
            # The server's message may quote the access key id: leave it out.
            return StorageUnavailableError(
                f"{said}: access refused ({name or http}); check the credentials", key=key
            )
        message = err.response.get("Error", {}).get("Message", "")  # type: ignore[attr-defined]
        return StorageUnavailableError(f"{said}: {name or http} {message}".rstrip(), key=key)
    exceptions = botocore.exceptions
    if isinstance(err, exceptions.NoCredentialsError | exceptions.PartialCredentialsError):
        found = "incomplete" if isinstance(err, exceptions.PartialCredentialsError) else "no"
        return StorageURLError(
            f"{said}: {found} AWS credentials found; {_WHERE_CREDENTIALS}", key=key
        )
    if isinstance(err, exceptions.ParamValidationError):
        return StorageURLError(f"{said}: {err}", key=key)
    return StorageUnavailableError(f"{said}: {type(err).__name__}: {err}", key=key)


def bucket_error(err: Exception, where: str, url: str) -> StorageError:
    """What opening a storage raises when HeadBucket of its bucket failed with ``err``."""
    if isinstance(err, ClientError):
        http = status(err)
        if http == 404 or code(err) == "NoSuchBucket":
            return StorageURLError(
                f"no durableflow storage at {url}: S3 {where} does not exist; "
                "create the bucket first (durableflow never creates one)"
            )
        if http == 301:
            metadata = err.response.get("ResponseMetadata", {})  # type: ignore[attr-defined]
            region = metadata.get("HTTPHeaders", {}).get("x-amz-bucket-region", "another region")
            return StorageURLError(
                f"S3 {where} is in {region}; add region_name={region} to the URL"
            )
        if http in (401, 403):
            return StorageUnavailableError(
                f"access to S3 {where} was refused (HTTP {http}): check the "
                "credentials (environment, profile, instance role) and the bucket policy"
            )
        return translate(err, where, "open", None)
    translated = translate(err, where, "open", None)
    if type(translated) is StorageUnavailableError:
        translated = StorageUnavailableError(
            f"cannot reach S3 {where}: {type(err).__name__}: {err}"
        )
    return translated
