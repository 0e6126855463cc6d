"""FaultyStorage: injects exactly the faults asked for, where asked, and heals."""

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from durableflow.errors import StorageFullError, StorageUnavailableError
from durableflow.storage.base import Storage
from durableflow.storage.filesystem import FileStorage
from durableflow.storage.memory import MemoryStorage
from durableflow.testing import FaultyStorage, StorageContract


class TestFaultyStorageWithoutFaultsKeepsTheContract(StorageContract):
    def make_storage(self, tmp_path: Path) -> Storage:
        return FaultyStorage(FileStorage(tmp_path / "store", fsync=False))


@pytest.fixture
def inner() -> MemoryStorage:
    return MemoryStorage()


def test_the_nth_operation_of_a_kind_fails_and_is_not_performed(inner: MemoryStorage) -> None:
    storage = FaultyStorage(inner, "put", nth=2, error=True)
    storage.put("a", b"1")
    with pytest.raises(StorageUnavailableError) as caught:
        storage.put("b", b"2")
    assert caught.value.key == "b"
    storage.put("c", b"3")
    assert inner.list("") == ["a", "c"]
    assert storage.get("a") == b"1"  # other kinds are not counted


def test_key_filter_counts_only_matching_keys(inner: MemoryStorage) -> None:
    storage = FaultyStorage(inner, "create", key="/outputs/", error=True)
    assert storage.create("wf/run", b"") is True
    assert storage.create("wf/specs/root", b"") is True
    with pytest.raises(StorageUnavailableError):
        storage.create("wf/outputs/t1", b"")
    assert storage.create("wf/outputs/t2", b"") is True
    assert inner.get("wf/outputs/t1") is None


def test_times_repeats_and_none_fails_until_healed(inner: MemoryStorage) -> None:
    storage = FaultyStorage(inner)
    fault = storage.inject("get", nth=2, times=2, error=True)
    outcomes = []
    for _ in range(5):
        try:
            storage.get("k")
            outcomes.append("ok")
        except StorageUnavailableError:
            outcomes.append("fail")
    assert outcomes == ["ok", "fail", "fail", "ok", "ok"]
    assert (fault.seen, fault.fired) == (5, 2)
    storage.inject("list", times=None, error=True)
    for _ in range(3):
        with pytest.raises(StorageUnavailableError):
            storage.list("")
    storage.heal()
    assert storage.list("") == []
    assert storage.faults == []


def test_error_after_performs_the_operation_then_raises(inner: MemoryStorage) -> None:
    storage = FaultyStorage(inner, "create", error_after=True)
    with pytest.raises(StorageUnavailableError, match="after"):
        storage.create("k", b"v")
    assert inner.get("k") == b"v"  # the write landed; only the reply was lost


def test_a_given_exception_is_raised(inner: MemoryStorage) -> None:
    storage = FaultyStorage(inner, "put", error=StorageFullError("disk full", key="k"))
    with pytest.raises(StorageFullError, match="disk full"):
        storage.put("k", b"v")


def test_hang_blocks_until_its_timeout_then_raises(inner: MemoryStorage) -> None:
    storage = FaultyStorage(inner, "get", hang=0.3)
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match="hang"):
        storage.get("k")
    assert 0.25 < time.monotonic() - started < 5


def test_heal_releases_a_hanging_operation_at_once(inner: MemoryStorage) -> None:
    storage = FaultyStorage(inner, "swap", hang=60)
    errors: list[BaseException] = []

    def swapper() -> None:
        try:
            storage.swap("k", b"", b"v")
        except StorageUnavailableError as err:
            errors.append(err)

    thread = threading.Thread(target=swapper)
    started = time.monotonic()
    thread.start()
    deadline = time.monotonic() + 10
    while not storage.faults[0].fired and time.monotonic() < deadline:
        time.sleep(0.01)
    storage.heal()
    thread.join(10)
    assert time.monotonic() - started < 10
    assert len(errors) == 1
    storage.put("k", b"")
    assert storage.swap("k", b"", b"v") is True


def test_before_and_after_run_around_the_inner_call(inner: MemoryStorage) -> None:
    events: list[str] = []
    storage = FaultyStorage(
        inner,
        "put",
        key="x",
        before=lambda: events.append(f"before: {inner.get('x')!r}"),
        after=lambda: events.append(f"after: {inner.get('x')!r}"),
    )
    storage.put("x", b"v")
    assert events == ["before: None", "after: b'v'"]


def test_counting_is_exact_under_threads(inner: MemoryStorage) -> None:
    storage = FaultyStorage(inner, "get", nth=500, error=True)
    failures = []

    def reader() -> None:
        for _ in range(100):
            try:
                storage.get("k")
            except StorageUnavailableError:
                failures.append(1)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(failures) == 1
    assert storage.calls()["get"] == 800
    assert storage.faults[0].seen == 800


def test_put_many_counts_each_value_and_batches_around_faults(tmp_path: Path) -> None:
    inner = FileStorage(tmp_path / "store", fsync=False)
    batches: list[list[str]] = []
    real_put_many = inner.put_many
    inner.put_many = lambda items: (  # type: ignore[method-assign]
        batches.append([k for k, _ in items]) or real_put_many(items)
    )
    storage = FaultyStorage(inner)
    storage.put_many([(f"k{i}", b"") for i in range(4)])
    assert batches == [["k0", "k1", "k2", "k3"]]  # no fault: one inner call
    storage.inject("put", nth=3, error=True)  # a rule counts from its injection on
    with pytest.raises(StorageUnavailableError):
        storage.put_many([(f"m{i}", b"") for i in range(5)])
    assert batches[1:] == [["m0", "m1"]]
    assert inner.list("m") == ["m0", "m1"]
    assert storage.calls()["put"] == 7


def test_delete_prefix_counts_each_key_as_a_delete(inner: MemoryStorage) -> None:
    for key in ("p/a", "p/b", "p/c", "q/a"):
        inner.put(key, b"")
    storage = FaultyStorage(inner, "delete", key="p/b", error=True)
    with pytest.raises(StorageUnavailableError):
        storage.delete_prefix("p/")
    assert inner.list("") == ["p/b", "p/c", "q/a"]
    storage.heal()
    storage.delete_prefix("p/")
    assert inner.list("") == ["q/a"]
    assert storage.calls()["delete"] == 4


def test_url_and_repr_are_the_inner_storage(tmp_path: Path) -> None:
    inner = FileStorage(tmp_path / "store")
    storage = FaultyStorage(inner, "get", error=True)
    assert storage.url == inner.url
    assert storage.inner is inner
    assert repr(inner) in repr(storage)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("read",), {"error": True}),
        (("get",), {}),
        (("get",), {"nth": 0, "error": True}),
        (("get",), {"times": 0, "error": True}),
        ((), {"error": True}),
    ],
)
def test_bad_fault_arguments_raise_value_error(args: tuple[str, ...], kwargs: dict) -> None:
    with pytest.raises(ValueError):
        FaultyStorage(MemoryStorage(), *args, **kwargs)


_KILL_SCRIPT = """
import sys
from durableflow.storage.filesystem import FileStorage
from durableflow.testing import FaultyStorage, kill_this_process
storage = FaultyStorage(FileStorage(sys.argv[1]), "put", key="second", {where}=kill_this_process)
storage.put("first", b"1")
storage.put("second", b"2")
storage.put("third", b"3")
"""


@pytest.mark.parametrize(
    ("where", "survivors"), [("before", ["first"]), ("after", ["first", "second"])]
)
def test_sigkill_before_or_after_the_write(
    tmp_path: Path, where: str, survivors: list[str]
) -> None:
    script = textwrap.dedent(_KILL_SCRIPT).format(where=where)
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store")], timeout=60, check=False
    )
    assert result.returncode == -signal.SIGKILL
    assert FileStorage(tmp_path / "store").list("") == survivors


def test_durability_scopes_are_the_inner_storages(tmp_path: Path) -> None:
    from durableflow.storage.sqlite import SQLiteStorage

    inner = SQLiteStorage(tmp_path / "wf.db")
    storage = FaultyStorage(inner)
    assert storage.ordered
    syncs = inner._group().syncs
    with storage.volatile():
        storage.put("v", b"v")
    assert inner._group().syncs == syncs
    with storage.batch():
        storage.put("k", b"v")
        storage.put("l", b"v")
    assert inner._group().syncs == syncs + 1
    storage.sync()
    assert inner._group().syncs == syncs + 2
