"""Values stored before Ray's modules moved into durableflow.ray still load.

Stored pickles name classes and functions by module path: a Ray workflow's specs hold
``RayFunction`` s, and a value holding ObjectRefs is stored as a call of ``_restore`` (or
``_restore_argument`` for a task argument). Until ``durableflow.ray`` existed those lived in
``durableflow.executors.ray_dag`` and ``durableflow.executors.ray_values``; the envelopes below
were written by durableflow then (``Serializer().dumps``, at commit f25b1c2) and must keep
reading: a workflow stored by that version resumes with today's.
"""

from __future__ import annotations

import base64

import pytest

from durableflow.storage.serializer import MOVED_MODULES, Serializer

pytest.importorskip("ray")

FUNC = (  # RayFunction(abs)
    "REZMMQAAAAAAgAWV3gAAAAAAAACMHWR1cmFibGVmbG93LmV4ZWN1dG9ycy5yYXlfZGFnlIwLUmF5RnVuY3Rpb26Uk5Qpg"
    "ZR9lCiMBGJvZHmUjAhidWlsdGluc5SMA2Fic5STlIwJcmVmX3BhdGhzlCmMDnBvcnRhYmxlX3BhdGhzlCmMCl9fbW9kdW"
    "xlX1+UaAaMDF9fcXVhbG5hbWVfX5SMA2Fic5SMCF9fbmFtZV9flIwDYWJzlIwHX19kb2NfX5SMKlJldHVybiB0aGUgYWJz"
    "b2x1dGUgdmFsdWUgb2YgdGhlIGFyZ3VtZW50LpR1Yi6jJNcu"
)
OUTPUT = (  # _Portable([1, 2]): an output that held ObjectRefs (none here)
    "REZMMQAAAAAAgAWVTgAAAAAAAACMIGR1cmFibGVmbG93LmV4ZWN1dG9ycy5yYXlfdmFsdWVzlIwIX3Jlc3RvcmWUk5RDF"
    "IAFlQkAAAAAAAAAXZQoSwFLAmUulF2UhpRSlC6+HWva"
)
NESTED = (  # _Portable({"inner": _Portable([3])}): the inner one pickled inside the outer's data
    "REZMMQAAAAAAgAWVmwAAAAAAAACMIGR1cmFibGVmbG93LmV4ZWN1dG9ycy5yYXlfdmFsdWVzlIwIX3Jlc3RvcmWUk5RDY"
    "YAFlVYAAAAAAAAAfZSMBWlubmVylIwgZHVyYWJsZWZsb3cuZXhlY3V0b3JzLnJheV92YWx1ZXOUjAhfcmVzdG9yZZSTlE"
    "MRgAWVBgAAAAAAAABdlEsDYS6UXZSGlFKUcy6UXZSGlFKULjaqzIE="
)
ARGUMENT = (  # _PortableArgument({"a": 1}): a task argument that held ObjectRefs
    "REZMMQAAAAAAgAWVWAAAAAAAAACMIGR1cmFibGVmbG93LmV4ZWN1dG9ycy5yYXlfdmFsdWVzlIwRX3Jlc3RvcmVfYXJn"
    "dW1lbnSUk5RDFYAFlQoAAAAAAAAAfZSMAWGUSwFzLpRdlIaUUpQuysjPJQ==",
)[0]


def load(envelope: str) -> object:
    data = base64.b64decode(envelope)
    assert b"durableflow.executors.ray_" in data  # written under the old module paths
    return Serializer().loads(data)


def test_a_stored_ray_function_loads_from_its_new_module_and_still_calls():
    from durableflow.ray.dag import RayFunction

    func = load(FUNC)
    assert type(func) is RayFunction
    assert (func.body, func.__qualname__) == (abs, "abs")
    assert func(-3) == 3


def test_stored_values_that_held_object_refs_load():
    from durableflow.ray.values import _PortableArgument, unwrap

    assert load(OUTPUT) == [1, 2]  # an output comes back plain
    assert load(NESTED) == {"inner": [3]}
    argument = load(ARGUMENT)
    assert isinstance(argument, _PortableArgument) and unwrap(argument) == {"a": 1}


def test_the_moved_modules_exist_and_a_really_missing_name_is_still_an_error():
    import importlib

    from durableflow.errors import SerializationError

    for new in MOVED_MODULES.values():
        importlib.import_module(new)
    payload = bytes(Serializer().unwrap(base64.b64decode(FUNC))[1])
    for old, missing in [
        (b"RayFunction", "RayFunctio_"),  # a moved module, a name it does not have
        (b"durableflow.executors.ray_dag", "durableflow.executors.ray_xyz"),  # never moved
    ]:
        data = Serializer().wrap(payload.replace(old, missing.encode()))
        with pytest.raises(SerializationError, match=missing):
            Serializer().loads(data)
