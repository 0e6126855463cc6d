"""Modules split by responsibility keep their names where users import them.

Stored pickles name DAG types by module path, so the types stay in ``durableflow.model.dag``;
the functions that moved are re-exported from the module they left.
"""

from __future__ import annotations

import cloudpickle

from durableflow.model import dag, flatten
from durableflow.model.task import TaskOptions
from durableflow.runtime import env_capture, environment


def _step() -> int:
    return 1


def test_flattening_names_still_import_from_model_dag() -> None:
    assert (dag.flatten, dag.IdAllocator, dag.execute) == (
        flatten.flatten,
        flatten.IdAllocator,
        flatten.execute,
    )


def test_stored_dag_types_are_pickled_under_model_dag() -> None:
    spec = dag.TaskSpec("t", _step, (dag.TaskRef("u"),), {}, TaskOptions(), ("u",))
    flat = dag.FlatDAG("t", (spec,))
    data = cloudpickle.dumps(flat)
    for name in (b"FlatDAG", b"TaskSpec", b"TaskRef"):
        assert name in data
    assert b"durableflow.model.flatten" not in data
    assert b"durableflow.model.dag" in data
    assert cloudpickle.loads(data).specs[0].args == (dag.TaskRef("u"),)


def test_capture_names_still_import_from_runtime_environment() -> None:
    for name in (
        "capture_environment",
        "fingerprint",
        "function_key",
        "installed_distributions",
        "process_environment",
    ):
        assert getattr(environment, name) is getattr(env_capture, name), name


def test_the_contract_suite_is_one_class_with_every_check() -> None:
    from durableflow.testing import StorageContract
    from durableflow.testing.contract import StorageContract as direct

    assert StorageContract is direct
    checks = [name for name in dir(StorageContract) if name.startswith("test_")]
    assert len(checks) == 25
