"""The API of virtual actors: Ray 1.x's example, creating, finding, listing, deleting, errors."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest
from actor_classes import Counter, Log

from durableflow import Client, WorkflowExecutionError, WorkflowNotFoundError, workflow
from durableflow.actors import (
    ActorCallError,
    ActorDefinitionError,
    ActorExistsError,
    ActorNotFoundError,
    actor_calls,
    delete_actor,
    get_actor,
    list_actors,
    virtual_actor,
)
from durableflow.errors import InvalidWorkflowIdError, WorkflowExistsError


@pytest.fixture
def default_client(file_url: str) -> Iterator[Client]:
    """The facade's default Client on a fresh directory (what Ray 1.x programs use)."""
    client = workflow.init(file_url)
    yield client
    workflow.shutdown(wait=False)


def test_ray_1x_example_runs_with_only_the_import_changed(default_client: Client) -> None:
    # Ray 1.x's "Virtual Actors" page, with ``from durableflow import workflow`` (here
    # ``from durableflow.actors import virtual_actor``: the facade's re-export is the lead's)
    # and ``ray.get(ref)`` as ``ref.result()`` (embedded, run_async returns a future).
    @virtual_actor
    class Counter:
        def __init__(self, init_val):
            self._val = init_val

        def incr(self, val=1):
            self._val += val
            print(self._val)

        @virtual_actor.readonly
        def value(self):
            return self._val

        def __getstate__(self):
            return self._val

        def __setstate__(self, val):
            self._val = val

    counter = Counter.get_or_create("my_counter", 0)
    counter.incr.run(10)
    assert counter.value.run() == 10
    counter.incr.run_async(10)
    counter.incr.run(10)
    assert 30 == counter.value.run_async().result()  # noqa: SIM300 - as Ray wrote it

    counter = get_actor(workflow_id="my_counter")
    assert 30 == counter.value.run()  # noqa: SIM300
    assert counter.ready().result() is True


def test_the_issue_example_and_get_actor_from_the_default_client(default_client: Client) -> None:
    c = Counter.get_or_create("visits", 0)
    assert c.incr.run(5) == 5
    ref = c.incr.run_async(2)
    assert ref.result() == 7
    assert c.get.run() == 7
    assert get_actor("visits").get.run() == 7
    assert list_actors() == [("visits", "Counter")]


def test_get_or_create_returns_the_stored_actor_and_create_refuses_it(file_client: Client) -> None:
    counters = Counter.using(file_client)
    first = counters.get_or_create("c", 10)
    first.incr.run(1)
    again = counters.get_or_create("c", 999)  # other constructor arguments: the stored actor
    assert again.get.run() == 11
    with pytest.raises(ActorExistsError) as info:
        counters.create("c", 0)
    assert isinstance(info.value, WorkflowExistsError) and info.value.actor_id == "c"
    assert counters.create("d", 3).get.run() == 3
    assert list_actors(client=file_client) == [("c", "Counter"), ("d", "Counter")]


def test_unknown_actor_raises_workflow_not_found(file_client: Client) -> None:
    with pytest.raises(WorkflowNotFoundError) as info:
        get_actor("nobody", client=file_client)
    assert isinstance(info.value, ActorNotFoundError) and info.value.workflow_id == "nobody"
    with pytest.raises(ActorNotFoundError):
        delete_actor("nobody", client=file_client)


def test_bad_ids_and_bad_definitions_are_refused(file_client: Client) -> None:
    counters = Counter.using(file_client)
    for bad in ("", "a/b", "..", "x" * 201):
        with pytest.raises(InvalidWorkflowIdError):
            counters.get_or_create(bad, 0)
    assert file_client.storage.list("") == []  # nothing stored by a refused call
    with pytest.raises(ActorDefinitionError):
        virtual_actor(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ActorDefinitionError):
        virtual_actor.readonly(property(lambda self: 1))
    with pytest.raises(ActorDefinitionError):
        Counter(0)  # not instantiated directly
    handle = counters.get_or_create("c", 0)
    with pytest.raises(AttributeError, match="no method 'nope'"):
        handle.nope  # noqa: B018
    with pytest.raises(ActorDefinitionError, match="readonly"):
        handle.get.send()


def test_a_method_that_raises_commits_no_state_change(file_client: Client) -> None:
    handle = Counter.using(file_client).get_or_create("c", 5)
    with pytest.raises(ActorCallError) as info:
        handle.fail.run()
    err = info.value
    assert isinstance(err, WorkflowExecutionError)
    assert isinstance(err.__cause__, ValueError) and str(err.__cause__) == "refused"
    assert (err.actor_id, err.seq, err.method) == ("c", 1, "fail")
    assert handle.get.run() == 5  # the method's partial change is not kept
    assert handle.incr.run(1) == 6  # and the actor goes on


def test_delete_actor_removes_everything_and_frees_the_id(file_client: Client) -> None:
    counters = Counter.using(file_client)
    counters.get_or_create("c", 0).incr.run(4)
    counters.get_or_create("keep", 0).incr.run(1)
    delete_actor("c", client=file_client)
    assert list_actors(client=file_client) == [("keep", "Counter")]
    assert [k for k in file_client.storage.list("") if "/c/" in k or k.endswith("/c")] == []
    with pytest.raises(ActorNotFoundError):
        get_actor("c", client=file_client)
    assert counters.get_or_create("c", 100).incr.run(1) == 101  # a new actor, from scratch


def test_handles_pickle_by_id_and_state_uses_getstate(default_client: Client) -> None:
    log = Log.get_or_create("log")
    log.append.run("a")
    copy = pickle.loads(pickle.dumps(log))
    assert copy.actor_id == "log" and copy.all.run() == ["a"]


def test_an_actor_deleted_and_created_again_elsewhere_is_not_confused_with_the_old_one(
    file_url: str,
) -> None:
    with Client(file_url) as here, Client(file_url) as elsewhere:  # two processes' views
        old = Counter.using(here).get_or_create("c", 0)
        assert [old.incr.run(1) for _ in range(3)] == [1, 2, 3]
        delete_actor("c", client=elsewhere)
        new = Counter.using(elsewhere).get_or_create("c", 100)
        assert new.incr.run(1) == 101
        with pytest.raises(ActorNotFoundError, match="deleted and created again"):
            old.incr.run(1)  # numbered for the old call log: refused, not applied
        assert old.incr.run(1) == 102  # then the new actor's log and state
        assert new.get.run() == 102
        assert [c.seq for c in actor_calls("c", client=here)] == [1, 2]
