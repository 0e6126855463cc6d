"""``durableflow actor list | show | calls | upgrade | delete``."""

from __future__ import annotations

import json

import pytest
from actor_classes import Counter
from click.testing import CliRunner

from durableflow import Client
from durableflow.cli import cli
from durableflow.cli.actors import actor

if "actor" not in cli.commands:  # registered by the lead in cli/__init__.py
    cli.add_command(actor)


def run(storage: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
    done = CliRunner().invoke(cli, ["--storage", storage, *args], input=stdin)
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise done.exception
    return done.exit_code, done.stdout, done.stderr


@pytest.fixture
def stored(file_url: str) -> str:
    with Client(file_url) as client:
        handle = Counter.using(client).get_or_create("visits", 0)
        handle.incr.run(5)
        with pytest.raises(Exception, match="refused"):
            handle.fail.run()
        handle.incr.send(2)
    return file_url


def test_list_show_and_calls(stored: str) -> None:
    code, out, _ = run(stored, "actor", "list", "--json")
    assert code == 0 and json.loads(out) == [{"actor_id": "visits", "class_name": "Counter"}]
    code, out, _ = run(stored, "actor", "show", "visits")
    assert code == 0
    assert "actor visits: actor_classes:Counter (version 1)" in out
    assert "state     {'value': 5}" in out and "pending   3" in out
    assert "ValueError: refused" in out
    code, out, _ = run(stored, "actor", "calls", "visits", "--json")
    rows = json.loads(out)
    assert [(r["seq"], r["method"], r["ok"], r["pending"]) for r in rows] == [
        (1, "incr", True, False),
        (2, "fail", False, False),
        (3, "incr", None, True),
    ]
    assert rows[0]["result"] == "5" and rows[1]["error"] == "ValueError: refused"
    code, out, _ = run(stored, "actor", "calls", "visits", "--last", "1")
    assert code == 0 and "PENDING" in out and "(sent)" in out and "fail" not in out


def test_upgrade_and_delete(stored: str) -> None:
    code, out, _ = run(stored, "actor", "upgrade", "visits")
    assert (code, out.strip()) == (0, "visits: upgraded to version 2")
    code, out, _ = run(stored, "actor", "upgrade", "visits", "--class", "actor_classes:Log")
    assert code == 0
    code, out, _ = run(stored, "actor", "upgrade", "visits", "--class", "actor_classes:double")
    assert code == 2 and "not a @virtual_actor class" in out + _
    code, _, _ = run(stored, "actor", "delete", "visits", stdin="n\n")
    assert code == 1  # not confirmed: nothing deleted
    assert json.loads(run(stored, "actor", "list", "--json")[1]) != []
    code, out, _ = run(stored, "actor", "delete", "visits", "--yes")
    assert (code, out.strip()) == (0, "visits: deleted")
    code, out, err = run(stored, "actor", "show", "visits")
    assert code == 1 and "no virtual actor 'visits' is stored" in err
