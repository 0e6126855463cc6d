"""The management API's upgrade: a changed class is refused or warned about by the environment
policy until ``upgrade_actor`` records it; then calls run the new code on the stored state,
which its ``__setstate__`` migrates."""

from __future__ import annotations

import importlib
import linecache
import shutil
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from durableflow import Client
from durableflow.actors import actor_info, drain_mailboxes, get_actor, upgrade_actor
from durableflow.errors import EnvironmentChangedWarning, EnvironmentMismatchError

V1 = """
from durableflow.actors import virtual_actor

@virtual_actor
class Cart:
    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)
        return len(self.items)

    @virtual_actor.readonly
    def total(self):
        return len(self.items)
"""

V2 = """
from durableflow.actors import virtual_actor

@virtual_actor
class Cart:
    def __init__(self):
        self.lines = {}

    def add(self, item, qty=1):
        self.lines[item] = self.lines.get(item, 0) + qty
        return sum(self.lines.values())

    @virtual_actor.readonly
    def total(self):
        return sum(self.lines.values())

    @virtual_actor.readonly
    def lines_of(self):
        return dict(self.lines)

    def __getstate__(self):
        return {"version": 2, "lines": self.lines}

    def __setstate__(self, state):
        if state.get("version") == 2:
            self.lines = dict(state["lines"])
        else:  # version 1 stored its __dict__: {"items": [...]}
            self.lines = {}
            for item in state["items"]:
                self.lines[item] = self.lines.get(item, 0) + 1
"""


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[Path, ModuleType]]:
    """A module ``shop_cart`` at version 1, importable by name (so stored by reference)."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "shop_cart.py").write_text(textwrap.dedent(V1))
    sys.path.insert(0, str(folder))
    try:
        yield folder, importlib.import_module("shop_cart")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("shop_cart", None)


def to_version_2(folder: Path) -> ModuleType:
    (folder / "shop_cart.py").write_text(textwrap.dedent(V2))
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)
    linecache.checkcache()
    importlib.invalidate_caches()
    return importlib.reload(sys.modules["shop_cart"])


def test_upgrade_runs_a_changed_method_on_migrated_state(
    shop: tuple[Path, ModuleType], storage_url: str
) -> None:
    folder, v1 = shop
    with Client(storage_url, env_policy="error") as client:
        cart = v1.Cart.using(client).get_or_create("cart")
        assert [cart.add.run(x) for x in ("apple", "pear", "apple")] == [1, 2, 3]
        assert cart.add.send("kiwi") == 4  # for a worker, which will run version 2's code

        v2 = to_version_2(folder)
        (refused,) = drain_mailboxes(client).values()  # what a worker does: refused, kept
        assert isinstance(refused, EnvironmentMismatchError)
        assert actor_info("cart", client=client).pending == (4,)
        with pytest.raises(EnvironmentMismatchError, match="source changed") as info:
            v2.Cart.using(client).get_or_create("cart")
        assert info.value.workflow_id == "cart"
        with pytest.raises(EnvironmentMismatchError):
            get_actor("cart", client=client)  # stored by reference: this code would run
        assert actor_info("cart", client=client).version == 1

        assert upgrade_actor("cart", client=client) == 2  # the stored class's code now
        info_after = actor_info("cart", client=client)
        assert info_after.version == 2 and info_after.upgraded is not None
        cart = get_actor("cart", client=client)
        assert cart.total.run() == 3  # the version-1 state, migrated by __setstate__
        assert drain_mailboxes(client) == {"cart": 1}  # the sent call, on version 2 now
        assert cart.add.run("pear", qty=2) == 6  # the changed method
        assert cart.lines_of.run() == {"apple": 2, "pear": 3, "kiwi": 1}
        assert "'version': 2" in str(actor_info("cart", client=client).state)


def test_warn_policy_warns_and_runs_the_new_code(
    shop: tuple[Path, ModuleType], file_url: str
) -> None:
    folder, v1 = shop
    with Client(file_url, env_policy="warn") as client:
        v1.Cart.using(client).get_or_create("cart").add.run("apple")
        v2 = to_version_2(folder)
        with pytest.warns(EnvironmentChangedWarning, match="shop_cart:Cart: source changed"):
            cart = v2.Cart.using(client).get_or_create("cart")
        assert cart.add.run("apple") == 2
    with Client(file_url, env_policy="warn") as client, warnings.catch_warnings():
        warnings.simplefilter("error")
        upgrade_actor("cart", v2.Cart, client=client)
        assert get_actor("cart", client=client).total.run() == 2  # no warning after upgrade
