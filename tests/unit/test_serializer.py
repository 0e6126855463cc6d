"""The serializer envelope: round trips, headers, corruption and signatures."""

import json
import pickle
import struct
import zlib

import pytest

from durableflow.errors import (
    CheckpointCorruptError,
    CheckpointSignatureError,
    SerializationError,
)
from durableflow.storage.serializer import Serializer


class _Unpicklable:
    def __reduce__(self) -> tuple:
        raise TypeError("not today")


@pytest.mark.parametrize(
    "value",
    [None, 0, "text", b"\x00bytes", [1, (2, 3)], {"a": {1, 2}}, 1.5, ValueError("boom")],
    ids=repr,
)
def test_values_round_trip(value: object) -> None:
    serializer = Serializer()
    result = serializer.loads(serializer.dumps(value))
    if isinstance(value, Exception):
        assert type(result) is type(value) and result.args == value.args
    else:
        assert result == value


def test_functions_round_trip_by_value() -> None:
    serializer = Serializer()
    offset = 10
    assert serializer.loads(serializer.dumps(lambda x: x + offset))(1) == 11


def test_header_is_readable_without_unpickling_the_payload() -> None:
    serializer = Serializer()
    data = serializer.dumps(_Marker(), header={"attempts": 2, "end": 1.5})
    header, payload = serializer.unwrap(data)
    assert header == {"attempts": 2, "end": 1.5}
    assert isinstance(payload, memoryview)
    assert serializer.loads_with_header(data)[0] == header


def test_no_header_reads_as_an_empty_dict() -> None:
    serializer = Serializer()
    assert serializer.loads_with_header(serializer.dumps(5)) == ({}, 5)


def test_envelope_layout_starts_with_magic_and_ends_with_crc() -> None:
    data = Serializer().dumps("x", header={"k": 1})
    assert data[:4] == b"DFL1"
    assert data[4] == 0  # unsigned
    (head_len,) = struct.unpack(">I", data[5:9])
    assert json.loads(data[9 : 9 + head_len]) == {"k": 1}
    assert struct.unpack(">I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_wrap_takes_already_pickled_bytes() -> None:
    serializer = Serializer()
    assert serializer.loads(serializer.wrap(pickle.dumps([1, 2]))) == [1, 2]


@pytest.mark.parametrize("signing_key", [None, b"key"])
def test_every_truncation_is_refused(signing_key: bytes | None) -> None:
    serializer = Serializer(signing_key)
    data = serializer.dumps({"value": list(range(20))}, header={"h": 1})
    for length in range(len(data)):
        with pytest.raises(CheckpointCorruptError):
            serializer.loads(data[:length])


@pytest.mark.parametrize("signing_key", [None, b"key"])
def test_every_single_flipped_byte_is_refused(signing_key: bytes | None) -> None:
    serializer = Serializer(signing_key)
    data = serializer.dumps("payload", header={"h": "header"})
    for index in range(len(data)):
        garbled = bytearray(data)
        garbled[index] ^= 0x41
        with pytest.raises(CheckpointCorruptError):
            serializer.loads(bytes(garbled))


@pytest.mark.parametrize("data", [b"", b"DFL1", b"garbage that is long enough", pickle.dumps(1)])
def test_foreign_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(CheckpointCorruptError, match="not a durableflow value"):
        Serializer().loads(data, what="task 't'")


def test_a_header_longer_than_the_value_is_refused() -> None:
    body = struct.pack(">4sBI", b"DFL1", 0, 1000) + b"short"
    data = body + struct.pack(">I", zlib.crc32(body))
    with pytest.raises(CheckpointCorruptError, match="header longer"):
        Serializer().loads(data)


def test_an_unreadable_header_is_refused() -> None:
    body = struct.pack(">4sBI", b"DFL1", 0, 3) + b"{{{" + pickle.dumps(1)
    data = body + struct.pack(">I", zlib.crc32(body))
    with pytest.raises(CheckpointCorruptError, match="unreadable header"):
        Serializer().loads(data)


def test_the_message_names_what_was_read() -> None:
    with pytest.raises(CheckpointCorruptError, match="output of task 'x'"):
        Serializer().loads(b"nonsense-nonsense", what="output of task 'x'")


# -- signing ------------------------------------------------------------------------------------


def test_signed_values_round_trip_and_say_so() -> None:
    serializer = Serializer("secret")
    assert serializer.signs
    assert not Serializer().signs
    data = serializer.dumps([1, 2], header={"a": 1})
    assert data[4] == 3  # the SIGNED and BOUND (the signature binds the storage key) flags
    assert serializer.loads_with_header(data) == ({"a": 1}, [1, 2])
    assert Serializer(b"secret").loads(data) == [1, 2]  # str and bytes keys are the same key


def test_an_unsigned_value_is_refused_when_a_key_is_set() -> None:
    data = Serializer().dumps("written without a key")
    with pytest.raises(CheckpointSignatureError, match="unsigned"):
        Serializer(b"key").loads(data)


def test_a_tampered_signed_value_is_refused() -> None:
    serializer = Serializer(b"key")
    data = bytearray(serializer.dumps("original"))
    index = data.index(b"original")
    data[index : index + 8] = b"modified"
    with pytest.raises(CheckpointSignatureError, match="bad signature"):
        serializer.loads(bytes(data))


def test_a_value_signed_with_another_key_is_refused() -> None:
    data = Serializer(b"their key").dumps("value")
    with pytest.raises(CheckpointSignatureError, match="bad signature"):
        Serializer(b"our key").loads(data)


def test_a_signed_value_is_refused_without_a_key() -> None:
    data = Serializer(b"key").dumps("value")
    with pytest.raises(CheckpointSignatureError, match="no signing key"):
        Serializer().loads(data)


def test_signature_errors_are_corruption_errors() -> None:
    assert issubclass(CheckpointSignatureError, CheckpointCorruptError)


def test_nothing_is_unpickled_before_the_signature_is_checked() -> None:
    evil = Serializer().wrap(b"cos\nsystem\n(S'exit 1'\ntR.")  # would run a shell command
    with pytest.raises(CheckpointSignatureError):
        Serializer(b"key").loads(evil)


# -- pickling errors ---------------------------------------------------------------------------


def test_an_unpicklable_value_raises_serialization_error() -> None:
    with pytest.raises(SerializationError, match="_Unpicklable"):
        Serializer().dumps(_Unpicklable())


def test_a_payload_that_does_not_unpickle_here_raises_serialization_error() -> None:
    payload = b"cno_such_module_x\nf\n."  # protocol 0: GLOBAL no_such_module_x.f, STOP
    with pytest.raises(SerializationError, match="cannot unpickle"):
        Serializer().loads(Serializer().wrap(payload))


# -- signatures bound to the storage key (issue 9, item 7) -------------------------------------

_OUT_T = "v1/workflows/w/outputs/t"


@pytest.mark.parametrize(
    "other_key",
    ["v1/workflows/w/outputs/u", "v1/workflows/x/outputs/t", "v1/workflows/w/specs/t", ""],
    ids=["another task", "another workflow", "another role", "no key"],
)
def test_a_signed_value_copied_under_another_key_is_refused(other_key: str) -> None:
    serializer = Serializer(b"key")
    data = serializer.dumps(100, header={"attempt": 1}, key=_OUT_T)
    assert serializer.loads(data, key=_OUT_T) == 100
    with pytest.raises(CheckpointSignatureError, match="copied") as info:
        serializer.loads(data, what="output", key=other_key)
    assert info.value.key == (other_key or None)
    with pytest.raises(CheckpointSignatureError):
        serializer.unwrap(data, key=other_key)  # the header is not trusted either


def test_the_error_names_the_key_the_value_was_read_from() -> None:
    serializer = Serializer(b"key")
    data = serializer.dumps(1, key=_OUT_T)
    with pytest.raises(CheckpointSignatureError, match="v1/workflows/w/outputs/u"):
        serializer.loads(data, what="output of task 'u'", key="v1/workflows/w/outputs/u")


def test_unsigned_values_ignore_the_key() -> None:
    serializer = Serializer()
    data = serializer.dumps(7, key=_OUT_T)
    assert serializer.loads(data, key="anything/else") == 7
    assert serializer.loads(data) == 7


def test_the_signature_covers_the_format_version() -> None:
    serializer = Serializer(b"key")
    data = bytearray(serializer.dumps("v", key=_OUT_T))
    data[4] = 0x01  # claim the older, unbound signature format
    with pytest.raises(CheckpointSignatureError, match="older format"):
        serializer.loads(bytes(data), key=_OUT_T)


def test_a_value_signed_before_keys_were_bound_is_refused() -> None:
    # The envelope durableflow wrote before: HMAC over the body only, flags SIGNED.
    body = struct.pack(">4sBI", b"DFL1", 1, 0) + pickle.dumps("old")
    import hashlib
    import hmac

    data = body + hmac.new(b"key", body, hashlib.sha256).digest()
    with pytest.raises(CheckpointSignatureError, match="does not bind the storage key"):
        Serializer(b"key").loads(data, key=_OUT_T)


@pytest.mark.parametrize("empty", ["", b""])
def test_an_empty_signing_key_is_an_error_not_signing_off(empty: str | bytes) -> None:
    with pytest.raises(ValueError, match="signing key must not be empty"):
        Serializer(empty)


def test_values_read_from_bytearrays_and_memoryviews() -> None:
    serializer = Serializer(b"key")
    data = serializer.dumps({"a": 1}, key=_OUT_T)
    assert serializer.loads(bytearray(data), key=_OUT_T) == {"a": 1}
    assert serializer.loads(memoryview(data), key=_OUT_T) == {"a": 1}


def test_wrap_binds_the_key_too() -> None:
    serializer = Serializer(b"key")
    data = serializer.wrap(pickle.dumps([1]), key=_OUT_T)
    assert serializer.loads(data, key=_OUT_T) == [1]
    with pytest.raises(CheckpointSignatureError):
        serializer.loads(data, key="v1/workflows/w/outputs/u")


# -- sealed JSON records -------------------------------------------------------------------------

_RUN_W = "v1/workflows/w/run"
_RECORD = b'{"workflow_id":"w","status":"RUNNING"}'


def test_without_a_key_a_record_is_stored_as_it_is() -> None:
    serializer = Serializer()
    assert serializer.seal(_RECORD, key=_RUN_W) == _RECORD
    assert serializer.open(_RECORD, key=_RUN_W, what="run record") == _RECORD


def test_a_sealed_record_opens_under_its_key() -> None:
    serializer = Serializer(b"key")
    sealed = serializer.seal(_RECORD, key=_RUN_W)
    assert sealed.startswith(_RECORD) and sealed != _RECORD
    assert serializer.seal(_RECORD, key=_RUN_W) == sealed  # deterministic: usable as expected
    assert serializer.open(sealed, key=_RUN_W, what="run record") == _RECORD


def test_an_unsigned_record_is_refused_as_forged_when_a_key_is_set() -> None:
    with pytest.raises(CheckpointSignatureError, match=r"unsigned.*forged") as info:
        Serializer(b"key").open(_RECORD, key=_RUN_W, what="run record of 'w'")
    assert info.value.key == _RUN_W


def test_a_record_copied_from_another_workflow_is_refused() -> None:
    serializer = Serializer(b"key")
    sealed = serializer.seal(_RECORD, key="v1/workflows/x/run")
    with pytest.raises(CheckpointSignatureError, match="copied"):
        serializer.open(sealed, key=_RUN_W, what="run record")


def test_an_edited_sealed_record_is_refused() -> None:
    serializer = Serializer(b"key")
    sealed = serializer.seal(_RECORD, key=_RUN_W)
    edited = sealed.replace(b"RUNNING", b"FAILED!")
    with pytest.raises(CheckpointSignatureError, match="bad signature"):
        serializer.open(edited, key=_RUN_W, what="run record")
    with pytest.raises(CheckpointSignatureError, match="bad signature"):
        Serializer(b"other").open(sealed, key=_RUN_W, what="run record")


def test_a_sealed_record_is_refused_without_a_key() -> None:
    sealed = Serializer(b"key").seal(_RECORD, key=_RUN_W)
    with pytest.raises(CheckpointSignatureError, match="no signing key"):
        Serializer().open(sealed, key=_RUN_W, what="run record")


class _Marker:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Marker)

    def __hash__(self) -> int:
        return 0
