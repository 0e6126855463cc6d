"""Fork (runtime/fork.py): copies, not references; a new DAG; kills at each step."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from durableflow import Client, WorkflowStatus
from durableflow.errors import WorkflowExistsError, WorkflowNotFoundError
from durableflow.model.dag import flatten
from durableflow.runtime.fork import fork, forked_from
from durableflow.storage import layout


def _load_restart_module():  # type: ignore[no-untyped-def]
    """The tasks and kill program of test_restart.py (one program for both kill suites)."""
    name = "durableflow_test_restart_tasks"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("test_restart.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


tr = _load_restart_module()


def test_fork_then_delete_the_source_then_resume_the_fork(client, tmp_path):
    log = str(tmp_path / "log")
    assert client.run(tr.chain(log), workflow_id="w") == 4
    assert fork(client.store, client.leases, "w", "w2", from_task="t3") == "w2"
    assert client.get_status("w2") is WorkflowStatus.RESUMABLE
    assert forked_from(client.store, "w2") == {"workflow_id": "w", "from_task": "t3"}
    assert client.store.list_done("w2") == {"t1", "t2"}
    assert tr.counts(log) == {"t1": 1, "t2": 1, "t3": 1, "t4": 1}  # a fork runs nothing
    client.delete("w")
    assert client.resume("w2") == 4
    assert tr.counts(log) == {"t1": 1, "t2": 1, "t3": 2, "t4": 2}
    assert forked_from(client.store, "w2") == {"workflow_id": "w", "from_task": "t3"}


def test_fork_with_a_new_dag_runs_the_fixed_code(client, tmp_path):
    log, bump = str(tmp_path / "log"), tmp_path / "bump"
    bump.write_text("10")
    assert client.run(tr.chain(log), workflow_id="w") == 4
    fixed = flatten(tr.chain(log, str(bump)))  # t2 adds 10 in the fixed DAG
    fork(client.store, client.leases, "w", "w2", from_task="t2", dag=fixed)
    assert client.store.list_done("w2") == {"t1"}
    assert client.resume("w2") == 14
    assert tr.counts(log) == {"t1": 1, "t2": 2, "t3": 2, "t4": 2}
    assert client.get_output("w") == 4  # the source is untouched


def test_fork_of_everything_and_of_a_continuation(client, tmp_path):
    log = str(tmp_path / "log")
    pre = tr.step.options(task_id="pre").bind("pre", 0, log)
    mid = tr.outer.options(task_id="outer").bind(pre, log)
    post = tr.step.options(task_id="post").bind("post", mid, log)
    assert client.run(post, workflow_id="w") == 5
    fork(client.store, client.leases, "w", "all")
    assert client.resume("all") == 5  # every checkpoint copied: nothing runs
    fork(client.store, client.leases, "w", "w2", from_task="c3")
    assert client.store.list_done("w2") == {"pre", "c1", "c2"}
    assert set(client.store.read_specs("w2")) == {"root", "outer"}
    assert client.resume("w2") == 5
    assert tr.counts(log) == {"pre": 1, "outer": 1, "c1": 1, "c2": 1, "c3": 2, "post": 2}


def test_fork_with_a_signing_key_reseals_the_copies(storage_url, tmp_path):
    log = str(tmp_path / "log")
    with Client(storage_url, signing_key="k1") as client:
        assert client.run(tr.chain(log), workflow_id="w") == 4
        fork(client.store, client.leases, "w", "w2", from_task="t4")
        # a byte copy would fail its signature under the new key; the fork's copies verify
        assert client.get_output("w2", task_id="t3") == 3
        assert client.resume("w2") == 4
    assert tr.counts(log) == {"t1": 1, "t2": 1, "t3": 1, "t4": 2}


def test_fork_refusals(client, tmp_path):
    log = str(tmp_path / "log")
    assert client.run(tr.chain(log), workflow_id="w") == 4
    with pytest.raises(WorkflowNotFoundError):
        fork(client.store, client.leases, "nope", "w2")
    with pytest.raises(WorkflowNotFoundError):
        fork(client.store, client.leases, "w", "w2", from_task="t9")
    with pytest.raises(WorkflowExistsError):
        fork(client.store, client.leases, "w", "w")
    fork(client.store, client.leases, "w", "w2")
    with pytest.raises(WorkflowExistsError):
        fork(client.store, client.leases, "w", "w2")


# One kill per step of the protocol (runtime/fork.py), and whether the fork exists after it.
FORK_KILLS = [
    ({"op": "create", "key": "workflows/w2/lease"}, False),  # 3
    ({"op": "put", "key": "workflows/w2/specs/"}, False),  # 4
    ({"op": "put", "key": "workflows/w2/outputs/", "nth": 2}, False),  # 5
    ({"op": "put", "key": "index/dirty/w2"}, False),  # 6, path C1
    ({"op": "create", "key": "workflows/w2/run"}, True),  # 6, the record: the fork exists
]
FORK_KILLS_ON_S3 = [FORK_KILLS[i][0] for i in (0, 1, 4)]  # see tr.RESTART_KILLS_ON_S3


# On SQLite the status change is one transaction (a Storage.batch() block): a kill after the
# record's create inside it reads as a kill before the change: no fork yet.
FORK_KILLS_IN_A_BLOCK_ON_SQLITE = {("create", "workflows/w2/run"): False}


@pytest.mark.parametrize(("kill", "exists"), FORK_KILLS)
def test_killed_at_each_step_of_a_fork(storage_url, tmp_path, kill, exists):
    tr.only_some_steps_on_s3(storage_url, kill, FORK_KILLS_ON_S3)
    exists = tr.killed_in_a_block(storage_url, kill, FORK_KILLS_IN_A_BLOCK_ON_SQLITE, exists)
    log = tr.run_killed(storage_url, tmp_path, "fork", kill)
    with Client(storage_url) as client:
        assert client.get_output("w") == 4  # the source is untouched
        if not exists:
            with pytest.raises(WorkflowNotFoundError):
                client.get_status("w2")
            assert client.list_all() == [("w", WorkflowStatus.SUCCESSFUL)]
            fork(client.store, client.leases, "w", "w2", from_task="t3")  # clears the leftovers
        assert client.get_status("w2") is WorkflowStatus.RESUMABLE
        assert client.store.list_done("w2") == {"t1", "t2"}
        assert client.resume("w2") == 4
        assert tr.counts(log) == {"t1": 1, "t2": 1, "t3": 2, "t4": 2}
        client.delete("w2")
        assert client.store.storage.list(layout.workflow_prefix("w2")) == []
