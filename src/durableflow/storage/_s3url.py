"""The ``s3://`` URL of :class:`~durableflow.storage.s3.S3Storage`: parse, check, render.

Kept apart from the backend so that it needs no boto3. Credentials never enter a URL: one that
carries them is refused without echoing them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qs, quote, unquote, urlencode, urlsplit

from durableflow.errors import StorageURLError
from durableflow.storage.base import check_key

__all__ = ["S3Options", "check_bucket_and_prefix", "parse_s3_url"]

_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$")
_ADDRESSING_STYLES = ("path", "virtual", "auto")
_NO_CREDENTIALS = (
    "credentials do not belong in {where}; use the AWS environment variables, "
    "a profile (profile_name=...) or an instance role"
)
# URL parameter -> converter from the query string; each is an S3Options field.
_PARAMS: dict[str, type] = {
    "endpoint_url": str,
    "region_name": str,
    "addressing_style": str,
    "profile_name": str,
    "max_attempts": int,
    "connect_timeout": float,
    "read_timeout": float,
}


@dataclass(frozen=True)
class S3Options:
    """Where the bucket is and how the client talks to it; everything a URL carries."""

    endpoint_url: str | None = None
    region_name: str | None = None
    addressing_style: str | None = None
    profile_name: str | None = None
    max_attempts: int = 5
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    def checked(self) -> S3Options:
        """These options with defaults applied (path addressing for an endpoint_url).

        Raises:
            StorageURLError: a malformed endpoint, addressing style or limit.
        """
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.username or parts.password:
                raise StorageURLError(_NO_CREDENTIALS.format(where="endpoint_url"))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise StorageURLError(
                    f"endpoint_url must be http(s)://host[:port], got {self.endpoint_url!r}"
                )
        style = self.addressing_style or ("path" if self.endpoint_url else None)
        if style is not None and style not in _ADDRESSING_STYLES:
            raise StorageURLError(
                f"addressing_style must be one of {', '.join(_ADDRESSING_STYLES)}, got {style!r}"
            )
        if self.max_attempts < 1 or self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise StorageURLError("max_attempts, connect_timeout and read_timeout must be > 0")
        values = asdict(self) | {"addressing_style": style}
        values["connect_timeout"] = float(self.connect_timeout)
        values["read_timeout"] = float(self.read_timeout)
        return S3Options(**values)

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of ``make_client``."""
        return asdict(self)

    def render(self, bucket: str, prefix: str) -> str:
        """``s3://bucket/prefix`` with every parameter that differs from its default."""
        defaults = asdict(S3Options())
        query = {
            name: value
            for name, value in asdict(self).items()
            if value is not None
            and value != defaults[name]
            # path addressing is implied by endpoint_url: say it only when it is not
            and not (name == "addressing_style" and value == "path" and self.endpoint_url)
        }
        text = f"s3://{bucket}/{quote(prefix, safe='/')}"
        return text + (f"?{urlencode(query, safe=':/')}" if query else "")


def check_bucket_and_prefix(bucket: str, prefix: str) -> str:
    """Return ``prefix`` without surrounding '/' if bucket and prefix are usable.

    Raises:
        StorageURLError: an invalid bucket name or prefix.
    """
    if not _BUCKET_RE.match(bucket or ""):
        raise StorageURLError(f"invalid S3 bucket name {bucket!r}")
    prefix = prefix.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except ValueError as err:
            raise StorageURLError(f"invalid S3 key prefix {prefix!r}: {err}") from err
    return prefix


def parse_s3_url(parts: SplitResult) -> tuple[str, str, dict[str, Any]]:
    """Split ``s3://bucket[/prefix][?param=value&...]`` into bucket, prefix, options.

    Raises:
        StorageURLError: credentials in the URL, an unknown parameter, or a bad value.
    """
    if "@" in parts.netloc:
        raise StorageURLError(_NO_CREDENTIALS.format(where="an s3:// URL"))
    options: dict[str, Any] = {}
    for name, values in parse_qs(parts.query, keep_blank_values=True).items():
        convert = _PARAMS.get(name)
        if convert is None:
            known = ", ".join(sorted(_PARAMS))
            raise StorageURLError(f"unknown s3 storage parameter {name!r}; known: {known}")
        try:
            options[name] = convert(values[-1])
        except ValueError as err:
            raise StorageURLError(f"bad value for s3 parameter {name}: {values[-1]!r}") from err
    return parts.netloc, unquote(parts.path), options
