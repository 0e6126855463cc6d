"""Ray options of an actor class, and where its method bodies run (:mod:`durableflow.actors.body`).

The options travel with the class wherever it is pickled (to the coordinator, into a Ray task,
into the actor's record); off Ray the bodies run in the writer's process.
"""

from __future__ import annotations

import pickle

import cloudpickle
from actor_classes import Counter, Planner

from durableflow import Client
from durableflow.actors import ActorClass, virtual_actor
from durableflow.actors.body import LOCAL, method_runner, run_body
from durableflow.actors.records import dump_state, load_state


@virtual_actor(num_cpus=0.5, resources={"slot": 1})
class Sized:
    def __init__(self) -> None:
        self.value = 0

    def incr(self) -> int:
        self.value += 1
        return self.value


def test_the_decorator_takes_ray_options_and_options_adds_to_them() -> None:
    assert isinstance(Sized, ActorClass)
    assert Sized.ray_options == {"num_cpus": 0.5, "resources": {"slot": 1}}
    bigger = Sized.options(num_cpus=2)
    assert bigger.ray_options == {"num_cpus": 2, "resources": {"slot": 1}}
    assert Sized.ray_options["num_cpus"] == 0.5  # the decorated class is unchanged
    assert Counter.ray_options == {}


def test_options_survive_using_a_client_and_pickling_by_name_and_by_value(file_url: str) -> None:
    with Client(file_url) as client:
        assert Counter.options(num_gpus=1).using(client).ray_options == {"num_gpus": 1}
    by_name = pickle.loads(cloudpickle.dumps(Counter.options(num_gpus=1)))
    assert by_name.cls is Counter.cls
    assert by_name.ray_options == {"num_gpus": 1}
    assert pickle.loads(cloudpickle.dumps(Counter)) is Counter  # no options: the module's own
    again = pickle.loads(cloudpickle.dumps(ActorClass(Sized.cls, None, {"num_cpus": 0.5})))
    assert (again.cls, again.ray_options) == (Sized.cls, {"num_cpus": 0.5})

    class Local:  # not importable by its name: pickled by value
        pass

    local = ActorClass(Local, None, {"num_cpus": 0.25})
    assert local.__reduce__()[0] is ActorClass
    by_value = pickle.loads(cloudpickle.dumps(local))
    assert by_value.ray_options == {"num_cpus": 0.25}


def test_off_ray_bodies_run_in_the_writer_process(file_url: str) -> None:
    with Client(file_url) as client:
        assert method_runner(client) is LOCAL
        handle = Sized.using(client).get_or_create("sized")
        assert handle.incr.run() == 1  # the options are for Ray: ignored here


def test_a_body_returns_its_result_and_new_state_or_its_error_and_the_old_state() -> None:
    state = dump_state({"value": 4})
    body = run_body(Counter, "incr", state, (3,), {})
    assert (body.ok, pickle.loads(body.value), load_state(body.state)) == (True, 7, {"value": 7})
    failed = run_body(Counter, "fail", state, (), {})
    assert (failed.ok, failed.state, failed.error) == (False, state, "ValueError: refused")
    assert isinstance(pickle.loads(failed.value), ValueError)
    planned = run_body(Planner, "grow", dump_state({"value": 1}), (), {})
    assert planned.ok and planned.value == b"" and planned.node is not None  # the writer runs it
    assert load_state(planned.state) == {"value": 2}
