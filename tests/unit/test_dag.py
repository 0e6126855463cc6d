"""The DAG model: binding, task ids, inputs, options. No I/O."""

from __future__ import annotations

import pytest

from durableflow import workflow
from durableflow.common import WORKFLOW_OPTIONS, WorkflowRef
from durableflow.model.dag import IdAllocator, InputNode, TaskRef, execute, flatten
from durableflow.model.task import TaskOptions


@workflow.task
def add(a: int, b: int) -> int:
    return a + b


@workflow.task
def total(*values: int) -> int:
    return sum(values)


@workflow.task
def pack(items: list, mapping: dict) -> tuple:
    return items, mapping


def test_bind_with_wrong_arguments_raises_type_error_at_bind_time():
    with pytest.raises(TypeError, match="add"):
        add.bind(1)
    with pytest.raises(TypeError):
        add.bind(1, 2, c=3)


def test_task_function_called_directly_runs_the_function():
    assert add(2, 3) == 5


def test_task_ids_are_module_and_qualname_with_suffixes_in_upstream_first_order():
    dag = add.bind(add.bind(1, 2), add.bind(3, 4))
    flat = flatten(dag)
    base = f"{__name__}.add"
    assert [s.task_id for s in flat.specs] == [base, f"{base}_1", f"{base}_2"]
    assert flat.root == f"{base}_2"
    assert flat.specs[-1].upstream == (base, f"{base}_1")


def test_task_ids_are_deterministic_across_flattenings():
    def build():
        return total.bind(add.bind(1, 2), add.bind(3, 4), add.bind(5, 6))

    assert [s.task_id for s in flatten(build()).specs] == [
        s.task_id for s in flatten(build()).specs
    ]


def test_a_node_used_twice_is_one_task():
    shared = add.bind(1, 2)
    flat = flatten(add.bind(shared, shared))
    assert len(flat.specs) == 2
    assert flat.specs[1].args == (TaskRef(flat.specs[0].task_id), TaskRef(flat.specs[0].task_id))
    assert flat.specs[1].upstream == (flat.specs[0].task_id,)


def test_nodes_nested_in_lists_dicts_and_tuples_become_refs():
    a, b = add.bind(1, 1), add.bind(2, 2)
    flat = flatten(pack.bind([a, (b, 3)], {"x": a, "y": [b]}))
    root = flat.specs[-1]
    ra, rb = TaskRef(flat.specs[0].task_id), TaskRef(flat.specs[1].task_id)
    assert root.args == ([ra, (rb, 3)], {"x": ra, "y": [rb]})
    assert set(root.upstream) == {ra.task_id, rb.task_id}


def test_explicit_task_id_is_used_and_duplicates_get_suffixes():
    first = add.options(task_id="step").bind(1, 2)
    flat = flatten(add.options(task_id="step").bind(first, 3))
    assert [s.task_id for s in flat.specs] == ["step", "step_1"]


def test_invalid_explicit_task_id_is_refused():
    with pytest.raises(ValueError, match="task id"):
        add.options(task_id="a/b")


def test_id_allocator_skips_taken_ids():
    ids = IdAllocator(["x", "x_1"])
    assert ids.allocate("x") == "x_2"
    assert ids.allocate("y") == "y"
    assert ids.allocate("y") == "y_1"


def test_long_chain_flattens_without_recursion_limit():
    node = add.bind(0, 1)
    for _ in range(5000):
        node = add.bind(node, 1)
    flat = flatten(node)
    assert len(flat.specs) == 5001
    assert flat.root == flat.specs[-1].task_id


def test_input_node_single_value_items_and_attributes():
    with InputNode() as inp:
        dag = add.bind(inp, 1)
    assert flatten(dag, inputs=((41,), {})).specs[0].args == (41, 1)
    inp = InputNode()
    flat = flatten(add.bind(inp[0], inp.b), inputs=((1,), {"b": 2}))
    assert flat.specs[0].args == (1, 2)
    flat = flatten(add.bind(inp["a"], inp[1]), inputs=((0, 5), {"a": 7}))
    assert flat.specs[0].args == (7, 5)


def test_input_node_missing_input_is_a_type_error():
    inp = InputNode()
    with pytest.raises(TypeError, match="input"):
        flatten(add.bind(inp[2], 1), inputs=((1,), {}))
    with pytest.raises(TypeError, match="exactly one input"):
        flatten(add.bind(inp, 1), inputs=((), {}))


def test_flatten_refuses_a_plain_value():
    with pytest.raises(TypeError, match="task node"):
        flatten(42)


def test_options_merge_workflow_and_executor_options():
    opts = TaskOptions().merged(max_retries=5, num_cpus=2, metadata={"a": 1})
    assert opts.max_retries == 5
    assert opts.executor_options == {"num_cpus": 2}
    assert opts.merged(metadata={"b": 2}).metadata == {"a": 1, "b": 2}


def test_ray_style_workflow_options_are_understood():
    ray_shape = workflow.options(
        task_id="t", catch_exceptions=True, checkpoint=False, metadata={"k": "v"}
    )
    assert set(ray_shape) == {"_metadata"}
    opts = TaskOptions().merged(**ray_shape, num_gpus=1)
    assert (opts.task_id, opts.catch_exceptions, opts.checkpoint) == ("t", True, False)
    assert opts.metadata == {"k": "v"}
    assert opts.executor_options == {"num_gpus": 1}


def test_options_validation():
    with pytest.raises(ValueError):
        TaskOptions(max_retries=-2)
    with pytest.raises(TypeError):
        TaskOptions(retry_exceptions=[int])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="JSON"):
        TaskOptions(metadata={"x": object()})
    assert TaskOptions(retry_exceptions=[KeyError]).retry_exceptions == (KeyError,)


def test_task_decorator_with_options():
    @workflow.task(max_retries=0, catch_exceptions=True)
    def f() -> int:
        return 1

    assert f.task_options.max_retries == 0
    assert f.task_options.catch_exceptions is True


def test_execute_runs_a_dag_locally_with_continuations():
    @workflow.task
    def countdown(n: int) -> int:
        if n == 0:
            return 0
        return workflow.continuation(countdown.bind(n - 1))

    assert add.bind(add.bind(1, 2), 3).execute() == 6
    assert countdown.bind(3).execute() == 0


def test_continuation_outside_a_workflow_runs_the_dag():
    assert workflow.continuation(add.bind(2, 2)) == 4


def test_ray_1x_step_form_binds():
    @workflow.step
    def double(x: int) -> int:
        return 2 * x

    node = double.step(4)
    assert node.execute() == 8


def test_default_ids_of_local_functions_are_rays_without_angle_brackets():
    def factorial(n: int) -> int:
        return n

    assert factorial.__qualname__.endswith("<locals>.factorial")
    node = workflow.task(factorial).bind(3)
    here = "test_default_ids_of_local_functions_are_rays_without_angle_brackets"
    assert flatten(node).root == f"{__name__}.{here}.locals.factorial"
    assert flatten(workflow.task(lambda: 1).bind()).root == f"{__name__}.{here}.locals.lambda"


def test_explicit_task_ids_are_kept_as_given():
    assert flatten(add.options(task_id="my-add_1.x").bind(1, 2)).root == "my-add_1.x"


def test_a_workflow_ref_is_an_upstream_task_of_the_dag():
    first = add.options(task_id="first").bind(1, 2)
    dag = add.bind(WorkflowRef("first"), total.bind(first))
    flat = flatten(dag)
    assert flat.specs[-1].args[0] == TaskRef("first")
    assert "first" in flat.specs[-1].upstream
    assert flat.outside == ()
    assert execute(dag) == 6


def test_a_workflow_ref_to_a_task_bound_later_in_the_dag_is_inside_it():
    later = add.options(task_id="later").bind(5, 5)
    dag = total.bind(add.bind(WorkflowRef("later"), 1), later)
    assert flatten(dag).outside == ()


def test_a_workflow_ref_outside_a_new_dag_is_listed_and_refused_in_a_continuation():
    flat = flatten(add.bind(WorkflowRef("earlier"), 1))
    assert flat.outside == ("earlier",)
    assert flatten(add.bind(WorkflowRef("earlier"), 1), ids=IdAllocator(["earlier"])).outside == ()
    with pytest.raises(ValueError, match="WorkflowRef\\('missing'\\)"):
        flatten(add.bind(WorkflowRef("missing"), 1), ids=IdAllocator(["earlier"]))


def test_workflow_options_is_a_mapping_and_a_decorator():
    opts = workflow.options(task_id="x", metadata={"k": "v"})
    assert dict(opts) == {"_metadata": {WORKFLOW_OPTIONS: {"task_id": "x", "metadata": {"k": "v"}}}}

    @workflow.options(task_id="decorated", checkpoint=False)
    @workflow.task
    def f() -> int:
        return 1

    assert (f.task_options.task_id, f.task_options.checkpoint) == ("decorated", False)
    assert flatten(f.bind()).root == "decorated"
    assert add.options(**opts).task_options.task_id == "x"


@pytest.mark.parametrize(
    "options",
    [{"metadata": "x"}, {"metadata": {"x": object()}}, {"name": "old"}, {"task_idd": "t"}],
)
def test_workflow_options_refuses_bad_options_with_value_error(options):
    with pytest.raises(ValueError):
        workflow.options(**options)


def test_workflow_options_decorates_only_task_functions():
    with pytest.raises(ValueError, match="decorates"):
        workflow.options(task_id="x")(lambda: 1)
