"""What actors leave in storage: compaction of old states, key-bound signatures."""

from __future__ import annotations

import pytest
from actor_classes import Counter

from durableflow import Client
from durableflow.actors import _layout, actor_calls, runtime
from durableflow.actors.store import ActorStore
from durableflow.errors import CheckpointSignatureError


def test_old_states_are_compacted_and_results_kept(
    client: Client, storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "COMPACT_EVERY", 3)
    handle = Counter.using(client).get_or_create("c", 0)
    assert [handle.incr.run(1) for _ in range(10)] == list(range(1, 11))
    store = ActorStore(client.storage, client.store.serializer)
    kept = [seq for seq in range(1, 11) if store.read_outcome("c", seq).state is not None]
    assert kept == [7, 8, 9, 10]  # states of calls 1-6 dropped, at calls 6 and 9
    assert [c.result for c in actor_calls("c", client=client)] == [str(i) for i in range(1, 11)]
    # another process (no cache) with a missing or far-off head hint finds the last state
    for head in (None, 2):
        if head is None:
            client.storage.delete(_layout.head_key("c"))
        else:
            store.write_head("c", head)
        with Client(storage_url) as other:
            assert Counter.using(other).get_or_create("c", 0).get.run() == 10


def test_a_call_copied_under_another_number_is_refused_when_signed(file_url: str) -> None:
    with Client(file_url, signing_key="k") as client:
        handle = Counter.using(client).get_or_create("c", 0)
        handle.incr.send(5)
        raw = client.storage.get(_layout.call_key("c", 1))
        assert raw is not None
        client.storage.create(_layout.call_key("c", 2), raw)  # a replay of call 1 as call 2
        with pytest.raises(CheckpointSignatureError):
            handle.incr.run(1)
        assert handle.get.run() == 5  # call 1 applied once; the copy never ran
