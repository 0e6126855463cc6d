"""Programs written for ``ray.workflow`` run with only their import line changed.

Each program below is the text a Ray Workflows user wrote (``from ray import workflow``). The
test swaps that one line for ``from durableflow import workflow``, runs the program, and checks
that ``workflow.run`` gives what plain Ray's ``dag.execute()`` gives for the same DAG (or, where
plain Ray has no equivalent, such as ``catch_exceptions``, what Ray Workflows gave).
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import ray

RAY_IMPORT = "from ray import workflow"
OUR_IMPORT = "from durableflow import workflow"

PROGRAMS: dict[str, str] = {}


def program(name: str, text: str) -> None:
    PROGRAMS[name] = textwrap.dedent(text)


program(
    "docs_first_workflow",
    """
    from typing import List
    import ray
    from ray import workflow

    @ray.remote
    def read_data(num: int):
        return [i for i in range(num)]

    @ray.remote
    def preprocessing(data: List[float]) -> List[float]:
        return [d**2 for d in data]

    @ray.remote
    def aggregate(data: List[float]) -> float:
        return sum(data)

    dag = aggregate.bind(preprocessing.bind(read_data.bind(10)))
    result = workflow.run(dag, workflow_id="first")
    assert workflow.get_status("first") == workflow.WorkflowStatus.SUCCESSFUL
""",
)

program(
    "input_node",
    """
    import ray
    from ray import workflow
    from ray.dag import InputNode

    @ray.remote
    def begin(x, pos, a):
        return x * a + pos

    @ray.remote
    def left(x, c, a):
        return f"left({x}, {c}, {a})"

    @ray.remote
    def right(x, b, pos):
        return f"right({x}, {b}, {pos})"

    @ray.remote
    def end(lf, rt, b):
        return f"{lf},{rt};{b}"

    with InputNode() as dag_input:
        f = begin.bind(2, dag_input[1], a=dag_input.a)
        lf = left.bind(f, "hello", dag_input.a)
        rt = right.bind(f, b=dag_input.b, pos=dag_input[0])
        dag = end.bind(lf, rt, b=dag_input.b)

    args, kwargs = (2, 3.14), {"a": 10, "b": "ok"}
    result = workflow.run(dag, *args, **kwargs)
    assert result == "left(23.14, hello, 10),right(23.14, ok, 2);ok"
""",
)

program(
    "workflow_options_with_ray_options",
    """
    import ray
    from ray import workflow

    @ray.remote(num_cpus=0.5)
    def one():
        return 1

    @ray.remote
    def add(a, b):
        return a + b

    total = add.options(
        **workflow.options(task_id="the_sum", metadata={"stage": "sum"}), num_cpus=1
    )
    dag = total.bind(100, one.options(**workflow.options(checkpoint=False)).bind())
    result = workflow.run(dag, workflow_id="opts")
    meta = workflow.get_metadata("opts", "the_sum")
    assert meta["user_metadata"] == {"stage": "sum"}
    assert meta["task_options"]["executor_options"]["num_cpus"] == "1"
""",
)

program(
    "continuation",
    """
    import ray
    from ray import workflow

    @ray.remote
    def h(a, b):
        return a + b

    @ray.remote
    def g(x):
        return workflow.continuation(h.bind(42, x))

    @ray.remote
    def f():
        return workflow.continuation(g.bind(1))

    dag = f.bind()
    result = workflow.run(dag)
""",
)

program(
    "recursive_continuation",
    """
    import ray
    from ray import workflow

    @ray.remote
    def add(a: int, b: int) -> int:
        return a + b

    @ray.remote
    def fib(n: int) -> int:
        if n <= 1:
            return n
        return workflow.continuation(add.bind(fib.bind(n - 1), fib.bind(n - 2)))

    dag = fib.bind(5)
    result = workflow.run(dag, workflow_id="fib")
""",
)

program(
    "catch_exceptions",
    """
    import ray
    from ray import workflow

    @ray.remote
    def faulty_function() -> str:
        raise ValueError("oops")

    @ray.remote
    def handle_errors(result):
        value, err = result
        return f"caught {type(err).__name__}" if err else f"ok {value}"

    dag = handle_errors.bind(
        faulty_function.options(**workflow.options(catch_exceptions=True)).bind()
    )
    result = workflow.run(dag)
    assert result == "caught ValueError"
    reference = None  # plain Ray has no catch_exceptions: the result is Ray Workflows'
""",
)

program(
    "object_refs_as_arguments",
    """
    import ray
    from ray import workflow

    @ray.remote
    def f(obj_list):
        assert isinstance(obj_list[0], ray.ObjectRef)
        assert ray.get(obj_list) == [42]
        return "ok"

    @ray.remote
    def g(x, y):
        assert x == 314
        assert isinstance(y[0], ray.ObjectRef)
        assert ray.get(y) == [2022]
        return [ray.put(42)]

    dag = f.bind(g.bind(x=ray.put(314), y=[ray.put(2022)]))
    result = workflow.run(dag)
""",
)

program(
    "dags_dereferenced_like_object_refs",
    """
    import ray
    from ray import workflow

    @ray.remote
    def g(x0, y0, z0, x1, y1, z1):
        assert x0 == 314
        assert isinstance(x1[0], ray.ObjectRef)
        assert ray.get(x1) == [314]
        assert isinstance(y0, ray.ObjectRef)
        assert ray.get(y0) == 271828
        (y10,) = y1
        assert isinstance(y10, ray.ObjectRef)
        assert isinstance(ray.get(y10), ray.ObjectRef)
        assert ray.get(ray.get(y10)) == 271828
        assert z0 == 46692
        assert isinstance(z1[0], ray.ObjectRef)
        assert ray.get(z1) == [46692]
        return "ok"

    @ray.remote
    def h(x):
        return x

    @ray.remote
    def nested(x):
        return h.bind(x).execute()

    @ray.remote
    def nested_continuation(x):
        return workflow.continuation(h.bind(x))

    dag = g.bind(
        x0=h.bind(314),
        y0=nested.bind(271828),
        z0=nested_continuation.bind(46692),
        x1=[h.bind(314)],
        y1=[nested.bind(271828)],
        z1=[nested_continuation.bind(46692)],
    )
    result = workflow.run(dag)
""",
)

program(
    "object_refs_in_outputs_and_inputs",
    """
    import ray
    from ray import workflow
    from ray.dag import InputNode

    @ray.remote
    def f(a):
        return [a[0]]

    x = {0: ray.put(10)}
    result1 = workflow.run(f.bind(x))
    with InputNode() as dag_input:
        dag = f.bind(dag_input.x)
    kwargs = {"x": x}
    result = workflow.run(dag, **kwargs)
    assert ray.get(*result1) == 10
    assert ray.get(*result) == 10
""",
)


def resolved(value: Any) -> Any:
    """``value`` with every ObjectRef replaced by its value, to compare two runs."""
    if isinstance(value, ray.ObjectRef):
        return ("ref", resolved(ray.get(value)))
    if isinstance(value, (list, tuple)):
        return type(value)(resolved(v) for v in value)
    if isinstance(value, dict):
        return {k: resolved(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_runs_with_only_the_import_line_changed(name, storage_dir, monkeypatch):
    text = PROGRAMS[name]
    assert text.count(RAY_IMPORT) == 1
    monkeypatch.setenv("DURABLEFLOW_STORAGE", str(storage_dir))
    namespace: dict[str, Any] = {"__name__": f"dropin_{name}"}
    from durableflow import workflow

    try:
        exec(compile(text.replace(RAY_IMPORT, OUR_IMPORT), f"<{name}>", "exec"), namespace)
    finally:
        workflow.shutdown()
    if "reference" in namespace:
        return
    args, kwargs = namespace.get("args", ()), namespace.get("kwargs", {})
    plain = ray.get(namespace["dag"].execute(*args, **kwargs))
    assert resolved(namespace["result"]) == resolved(plain)
