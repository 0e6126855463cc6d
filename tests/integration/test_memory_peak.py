"""Memory of a large checkpoint: writing or reading it costs about one copy, not four.

Measured in a fresh interpreter with tracemalloc (every Python allocation, NumPy's too), as
the peak above what was allocated before the call, divided by the value's size. Writing is
``Serializer.dumps`` plus ``FileStorage.create``; reading is ``FileStorage.get`` plus
``Serializer.loads``, minus the value it rebuilds. Before the streamed envelope, a signed
write peaked at 3.0x extra (the pickle, the joined body and body + trailer), 4.1x with the
value itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_SIZE_MB = 64

_PROGRAM = r"""
import json, os, sys, tracemalloc
from durableflow.storage.filesystem import FileStorage
from durableflow.storage.serializer import Serializer

root, kind, signing = sys.argv[1], sys.argv[2], sys.argv[3] == "signed"
size = int(sys.argv[4]) << 20
if kind == "bytes":
    value = os.urandom(size)
else:  # many small objects: what a list of records looks like
    value = [os.urandom(1000) for _ in range(size // 1000)]
serializer = Serializer(b"key" if signing else None)
storage = FileStorage(root)
key = "v1/workflows/w/outputs/t"

tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
storage.create(key, serializer.dumps(value, {"attempt": 1}, key=key))
write = tracemalloc.get_traced_memory()[1] - before

tracemalloc.reset_peak()
before = tracemalloc.get_traced_memory()[0]
back = serializer.loads(storage.get(key), key=key)
read = tracemalloc.get_traced_memory()[1] - before - size
assert back == value
print(json.dumps({"write": write / size, "read": read / size}))
"""


@pytest.mark.parametrize("signing", ["signed", "unsigned"])
@pytest.mark.parametrize("kind", ["bytes", "list"])
def test_a_large_value_is_written_and_read_with_about_one_extra_copy(
    tmp_path: Path, kind: str, signing: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(tmp_path / "store"), kind, signing, str(_SIZE_MB)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    ratios = json.loads(result.stdout)
    print(
        f"{kind} {_SIZE_MB} MB {signing}: write {ratios['write']:.2f}x read {ratios['read']:.2f}x"
    )
    assert ratios["write"] < 2.0
    assert ratios["read"] < 2.0
