r"""How values become bytes: cloudpickle inside a checked envelope; JSON records sealed.

Envelope of a pickled value (task outputs, specs, schedule DAGs)::

    b"DFL1" | flags (1 byte) | header length (4 bytes, big endian) | header (JSON) | payload
           | trailer

- without a signing key: flags 0, trailer = CRC-32 (4 bytes, big endian) of every byte before
  it. It catches truncated and garbled values; it authenticates nothing.
- with a signing key: flags ``SIGNED | BOUND`` (0x03), trailer = HMAC-SHA256 (32 bytes) with the
  signing key over::

      b"durableflow-value-2\x00" | length of the storage key (4 bytes) | storage key (UTF-8)
      | every byte before the trailer

  so the signature covers a format version (the domain string and the flags byte), the storage
  key the value is stored under (``v1/workflows/<wid>/outputs/<tid>``: the workflow id, the role
  and the task id) and the payload. A validly signed value copied under another key, into another
  task or another workflow, fails verification like a tampered one.

  A value signed by durableflow before signatures were bound to the key (flags 0x01 alone) is
  refused: accepting it would keep the copy attack open for every such value.

The trailer is checked before anything is unpickled, so a truncated, garbled or foreign value is
refused first, and with a signing key only values written by a holder of the key, for this very
key, are ever unpickled (unpickling runs code). The header carries small facts (a task's times
and attempts) readable without the payload.

Sealed JSON record (run records and other JSON that decides what runs, :meth:`Serializer.seal`)::

    JSON bytes | b"\x00DFLMAC2" | HMAC-SHA256 over
        b"durableflow-record-2\x00" | length of the storage key (4 bytes) | storage key | JSON

Without a signing key a record is stored as plain JSON, unchanged. JSON never contains a raw NUL
byte, so the marker cannot be confused with a record's text.

What a signing key does not do: it authenticates, it does not encrypt. Task arguments (in the
specs), outputs, errors, user metadata and the run record are stored in clear for anyone who can
read the storage (environment variables of a task's ``runtime_env`` are redacted where they are
recorded for display; see :mod:`durableflow.runtime.environment`).

Memory: a value is pickled straight into the buffer that becomes the envelope (no separate
pickle, join or trailer copies), and checksums and signatures are computed over memoryviews;
writing an envelope needs about one extra copy of the value's pickle, reading it one (the stored
bytes) besides the value being rebuilt.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import pickle
import struct
import zlib
from typing import Any

import cloudpickle

from durableflow.errors import CheckpointCorruptError, CheckpointSignatureError, SerializationError

__all__ = ["MOVED_MODULES", "Serializer"]

_MAGIC = b"DFL1"
_HEADER = json.JSONEncoder(separators=(",", ":"))
# Exact types whose pickle is the same from the standard pickler as from cloudpickle (which
# only changes how functions, classes and modules are pickled): values of these types, and
# small lists, tuples and str-keyed dicts of them, skip building a cloudpickle Pickler.
_PLAIN = frozenset({int, float, str, bytes, bool, type(None)})
_SIGNED = 0x01
_BOUND = 0x02
"""The signature binds the storage key (MAC version 2)."""
_PREFIX = struct.Struct(">4sBI")
_KEY_LENGTH = struct.Struct(">I")
_VALUE_DOMAIN = b"durableflow-value-2\x00"
_RECORD_DOMAIN = b"durableflow-record-2\x00"
_RECORD_MARKER = b"\x00DFLMAC2"
_MAC_SIZE = 32
_CRC_SIZE = 4


def _plain(value: Any, depth: int = 0) -> bool:
    kind = type(value)
    if kind in _PLAIN:
        return True
    if depth >= 2 or kind not in (list, tuple, dict) or len(value) > 64:
        return False
    if kind is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return all(_plain(v, depth + 1) for v in value)


def _check_signing_key(signing_key: bytes | str | None) -> bytes | None:
    if signing_key is None:
        return None
    if isinstance(signing_key, str):
        signing_key = signing_key.encode()
    if not isinstance(signing_key, bytes | bytearray):
        raise TypeError(f"signing key must be str or bytes, not {type(signing_key).__name__}")
    if not signing_key:
        raise ValueError("signing key must not be empty (pass None to store values unsigned)")
    return bytes(signing_key)


MOVED_MODULES: dict[str, str] = {
    "durableflow.executors.ray_dag": "durableflow.ray.dag",
    "durableflow.executors.ray_values": "durableflow.ray.values",
}
"""Modules that stored pickles may name at an old path: old path -> where they live now.

A pickle names classes and functions by module path; a Ray workflow's specs and values hold
some (``RayFunction``, ``_restore``). Add a line here when such a module moves.
"""


class _MovedUnpickler(pickle.Unpickler):
    """Finds the classes and functions of :data:`MOVED_MODULES` at their new path."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)


def _unpickle(payload: bytes | memoryview) -> Any:
    """Unpickle ``payload``; one naming a moved module is read again with the new paths.

    The plain C unpickler reads everything else at full speed; only a pickle that fails on a
    module of :data:`MOVED_MODULES` pays for the second read.
    """
    try:
        return pickle.loads(payload)
    except ModuleNotFoundError as err:
        if err.name not in MOVED_MODULES:
            raise
        return _MovedUnpickler(io.BytesIO(payload)).load()


class Serializer:
    """Pickles values into envelopes and checks envelopes on the way back.

    Args:
        signing_key: when set, values and sealed records are signed with HMAC-SHA256 bound to
            their storage key, and unsigned, tampered or moved ones are refused. None: values
            carry a checksum only.

    Raises:
        ValueError: ``signing_key`` is empty (an empty key would silently turn signing off).
    """

    def __init__(self, signing_key: bytes | str | None = None) -> None:
        self._key = _check_signing_key(signing_key)

    @property
    def signs(self) -> bool:
        """True when values are signed."""
        return self._key is not None

    # --- pickled values -------------------------------------------------------------------
    def dumps(self, value: Any, header: dict[str, Any] | None = None, *, key: str = "") -> bytes:
        """Pickle ``value`` into an envelope to be stored under ``key``.

        Args:
            value: anything cloudpickle can pickle.
            header: small JSON facts readable without unpickling.
            key: the storage key the envelope will be stored under; with a signing key the
                signature binds it, and the value reads back only under the same key.

        Raises:
            SerializationError: the value cannot be pickled.
        """
        buffer = self._start(header)
        try:
            if _plain(value):
                pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
            else:
                cloudpickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
        except Exception as err:
            raise SerializationError(f"cannot pickle {type(value).__name__}: {err}") from err
        return self._finish(buffer, key)

    def wrap(
        self, payload: bytes | memoryview, header: dict[str, Any] | None = None, *, key: str = ""
    ) -> bytes:
        """Put already-pickled bytes into an envelope to be stored under ``key``."""
        buffer = self._start(header)
        buffer.write(payload)
        return self._finish(buffer, key)

    def _start(self, header: dict[str, Any] | None) -> io.BytesIO:
        head = _HEADER.encode(header).encode() if header else b""
        flags = _SIGNED | _BOUND if self._key else 0
        buffer = io.BytesIO()
        buffer.write(_PREFIX.pack(_MAGIC, flags, len(head)))
        buffer.write(head)
        return buffer

    def _finish(self, buffer: io.BytesIO, key: str) -> bytes:
        # The trailer is computed over a view of the buffer, then appended to it; getvalue()
        # of a BytesIO with no view left hands over its buffer without copying it.
        with buffer.getbuffer() as body:
            if self._key:
                trailer = self._mac(_VALUE_DOMAIN, key, body)
            else:
                trailer = struct.pack(">I", zlib.crc32(body))
        buffer.write(trailer)
        return buffer.getvalue()

    def _mac(self, domain: bytes, key: str, body: bytes | memoryview) -> bytes:
        assert self._key is not None
        encoded = key.encode()
        mac = hmac.new(self._key, domain, hashlib.sha256)
        mac.update(_KEY_LENGTH.pack(len(encoded)))
        mac.update(encoded)
        mac.update(body)
        return mac.digest()

    def unwrap(
        self, data: bytes | bytearray | memoryview, what: str = "value", *, key: str = ""
    ) -> tuple[dict[str, Any], memoryview]:
        """Check an envelope read from ``key``; return its header and still-pickled payload.

        Raises:
            CheckpointCorruptError: truncated, garbled, or not an envelope.
            CheckpointSignatureError: unsigned, tampered, or signed for another key while a
                signing key is set; signed while none is.
        """
        view = memoryview(data)
        if len(view) < _PREFIX.size + _CRC_SIZE or view[:4] != _MAGIC:
            raise CheckpointCorruptError(
                f"{what} is not a durableflow value (bad magic or too short)", key=key or None
            )
        _, flags, head_len = _PREFIX.unpack_from(view)
        body = self._check_trailer(view, flags, what, key)
        start = _PREFIX.size
        if start + head_len > len(body):
            raise CheckpointCorruptError(f"{what} has a header longer than itself", key=key or None)
        try:
            header = json.loads(bytes(body[start : start + head_len])) if head_len else {}
        except ValueError as err:
            raise CheckpointCorruptError(
                f"{what} has an unreadable header", key=key or None
            ) from err
        return header, body[start + head_len :]

    def _check_trailer(self, view: memoryview, flags: int, what: str, key: str) -> memoryview:
        """The envelope without its trailer, once the trailer is verified."""
        named = f"{what} (stored under {key!r})" if key and key not in what else what
        if not flags & _SIGNED:
            if self._key:
                raise CheckpointSignatureError(
                    f"{named} is unsigned but a signing key is configured", key=key or None
                )
            body = view[:-_CRC_SIZE]
            (crc,) = struct.unpack(">I", view[-_CRC_SIZE:])
            if zlib.crc32(body) != crc:
                raise CheckpointCorruptError(
                    f"{what} fails its checksum (truncated or garbled)", key=key or None
                )
            return body
        if not self._key:
            raise CheckpointSignatureError(
                f"{named} is signed but no signing key is configured", key=key or None
            )
        if not flags & _BOUND:
            raise CheckpointSignatureError(
                f"{named} has a signature of an older format that does not bind the storage "
                "key; it is refused because such a value could have been copied here",
                key=key or None,
            )
        if len(view) < _PREFIX.size + _MAC_SIZE:
            raise CheckpointCorruptError(f"{what} is too short for its signature", key=key or None)
        body, mac = view[:-_MAC_SIZE], view[-_MAC_SIZE:]
        if not hmac.compare_digest(self._mac(_VALUE_DOMAIN, key, body), mac):
            raise CheckpointSignatureError(
                f"{named} has a bad signature: tampered, signed with another key, or copied "
                "here from another storage key (another task or workflow)",
                key=key or None,
            )
        return body

    def loads(
        self, data: bytes | bytearray | memoryview, what: str = "value", *, key: str = ""
    ) -> Any:
        """Check an envelope read from ``key`` and unpickle its payload."""
        return self.loads_with_header(data, what=what, key=key)[1]

    def loads_with_header(
        self, data: bytes | bytearray | memoryview, what: str = "value", *, key: str = ""
    ) -> tuple[dict[str, Any], Any]:
        """Check an envelope read from ``key``; return its header and unpickled payload.

        Raises:
            CheckpointCorruptError: see :meth:`unwrap`.
            SerializationError: the payload does not unpickle here (a missing module, say).
        """
        header, payload = self.unwrap(data, what=what, key=key)
        try:
            return header, _unpickle(payload)
        except Exception as err:
            raise SerializationError(
                f"cannot unpickle {what}: {type(err).__name__}: {err}"
            ) from err

    # --- JSON records ---------------------------------------------------------------------
    def seal(self, data: bytes, *, key: str) -> bytes:
        """``data`` (a JSON record) as stored under ``key``: unchanged, or signed.

        Without a signing key the record is returned as is. With one, a marker and an
        HMAC-SHA256 binding ``key`` and ``data`` are appended (see the module docstring).
        """
        if not self._key:
            return data
        return b"".join((data, _RECORD_MARKER, self._mac(_RECORD_DOMAIN, key, data)))

    def open(self, raw: bytes, *, key: str, what: str) -> bytes:
        """The JSON record in ``raw`` read from ``key``, once its seal is verified.

        Raises:
            CheckpointSignatureError: with a signing key, the record is unsigned, forged,
                tampered or copied from another key; without one, it is signed.
        """
        trailer = len(_RECORD_MARKER) + _MAC_SIZE
        signed = len(raw) >= trailer and raw[-trailer:-_MAC_SIZE] == _RECORD_MARKER
        named = f"{what} ({key})" if key not in what else what
        if not self._key:
            if signed:
                raise CheckpointSignatureError(
                    f"{named} is signed but no signing key is configured", key=key
                )
            return raw
        if not signed:
            raise CheckpointSignatureError(
                f"{named} is unsigned but a signing key is configured: refused as forged",
                key=key,
            )
        data = raw[:-trailer]
        if not hmac.compare_digest(self._mac(_RECORD_DOMAIN, key, data), raw[-_MAC_SIZE:]):
            raise CheckpointSignatureError(
                f"{named} has a bad signature: forged, tampered, signed with another key, or "
                "copied here from another storage key",
                key=key,
            )
        return data
