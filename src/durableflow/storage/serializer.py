"""How values become bytes: cloudpickle inside a checked envelope.

Envelope, version 1::

    b"DFL1" | flags (1 byte) | header length (4 bytes, big endian) | header (JSON) | payload
           | trailer: CRC-32 (4 bytes), or HMAC-SHA256 (32 bytes) when flags has SIGNED

The trailer covers every byte before it, so a truncated, garbled or foreign value is refused
before anything is unpickled. With a signing key, an unsigned or tampered value is refused too:
unpickling runs code, so only values written by a holder of the key are ever unpickled.
The header carries small facts (a task's times and attempts) readable without the payload.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import struct
import zlib
from typing import Any

import cloudpickle

from durableflow.errors import CheckpointCorruptError, CheckpointSignatureError, SerializationError

__all__ = ["Serializer"]

_MAGIC = b"DFL1"
_HEADER = json.JSONEncoder(separators=(",", ":"))
# Exact types whose pickle is the same from the standard pickler as from cloudpickle (which
# only changes how functions, classes and modules are pickled): values of these types, and
# small lists, tuples and str-keyed dicts of them, skip building a cloudpickle Pickler.
_PLAIN = frozenset({int, float, str, bytes, bool, type(None)})
_SIGNED = 0x01
_PREFIX = struct.Struct(">4sBI")


def _plain(value: Any, depth: int = 0) -> bool:
    kind = type(value)
    if kind in _PLAIN:
        return True
    if depth >= 2 or kind not in (list, tuple, dict) or len(value) > 64:
        return False
    if kind is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return all(_plain(v, depth + 1) for v in value)


class Serializer:
    """Pickles values into envelopes and checks envelopes on the way back.

    Args:
        signing_key: when set, values are signed with HMAC-SHA256 and unsigned or tampered
            values are refused.
    """

    def __init__(self, signing_key: bytes | str | None = None) -> None:
        if isinstance(signing_key, str):
            signing_key = signing_key.encode()
        self._key = signing_key or None

    @property
    def signs(self) -> bool:
        """True when values are signed."""
        return self._key is not None

    def dumps(self, value: Any, header: dict[str, Any] | None = None) -> bytes:
        """Pickle ``value`` into an envelope.

        Raises:
            SerializationError: the value cannot be pickled.
        """
        try:
            if _plain(value):
                payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            else:
                payload = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:
            raise SerializationError(f"cannot pickle {type(value).__name__}: {err}") from err
        return self.wrap(payload, header)

    def wrap(self, payload: bytes, header: dict[str, Any] | None = None) -> bytes:
        """Put already-pickled bytes into an envelope."""
        head = _HEADER.encode(header).encode() if header else b""
        flags = _SIGNED if self._key else 0
        body = b"".join((_PREFIX.pack(_MAGIC, flags, len(head)), head, payload))
        if self._key:
            return body + hmac.new(self._key, body, hashlib.sha256).digest()
        return body + struct.pack(">I", zlib.crc32(body))

    def unwrap(self, data: bytes, *, what: str = "value") -> tuple[dict[str, Any], memoryview]:
        """Check an envelope; return its header and its still-pickled payload.

        Raises:
            CheckpointCorruptError: truncated, garbled, or not an envelope.
            CheckpointSignatureError: unsigned or tampered while a signing key is set.
        """
        if len(data) < _PREFIX.size + 4 or data[:4] != _MAGIC:
            raise CheckpointCorruptError(
                f"{what} is not a durableflow value (bad magic or too short)"
            )
        _, flags, head_len = _PREFIX.unpack_from(data)
        view = memoryview(data)
        if flags & _SIGNED:
            if not self._key:
                raise CheckpointSignatureError(f"{what} is signed but no signing key is configured")
            body, mac = view[:-32], view[-32:]
            if not hmac.compare_digest(hmac.new(self._key, body, hashlib.sha256).digest(), mac):
                raise CheckpointSignatureError(
                    f"{what} has a bad signature (tampered or another key)"
                )
        else:
            if self._key:
                raise CheckpointSignatureError(
                    f"{what} is unsigned but a signing key is configured"
                )
            body = view[:-4]
            (crc,) = struct.unpack(">I", view[-4:])
            if zlib.crc32(body) != crc:
                raise CheckpointCorruptError(f"{what} fails its checksum (truncated or garbled)")
        start = _PREFIX.size
        if start + head_len > len(body):
            raise CheckpointCorruptError(f"{what} has a header longer than itself")
        try:
            header = json.loads(bytes(body[start : start + head_len])) if head_len else {}
        except ValueError as err:
            raise CheckpointCorruptError(f"{what} has an unreadable header") from err
        return header, body[start + head_len :]

    def loads(self, data: bytes, *, what: str = "value") -> Any:
        """Check an envelope and unpickle its payload."""
        return self.loads_with_header(data, what=what)[1]

    def loads_with_header(self, data: bytes, *, what: str = "value") -> tuple[dict[str, Any], Any]:
        """Check an envelope; return its header and unpickled payload.

        Raises:
            CheckpointCorruptError: see :meth:`unwrap`.
            SerializationError: the payload does not unpickle here (a missing module, say).
        """
        header, payload = self.unwrap(data, what=what)
        try:
            return header, pickle.loads(payload)
        except Exception as err:
            raise SerializationError(
                f"cannot unpickle {what}: {type(err).__name__}: {err}"
            ) from err
