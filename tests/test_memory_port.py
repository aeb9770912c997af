"""The memory port and its two implementations cannot drift apart: every public method of
`SQLiteMemory` is on `PostgresMemory` with the same parameters, and the `Memory` port lists
exactly those methods, with the same parameters, so what the engine calls exists on both.

Behaviour is proven by the shared suite (tests that take `memory_db` run on both backends);
this only catches a method or an argument added to one side and not the other.
"""

from __future__ import annotations

import inspect

import pytest

from engine.memory.pg.store import PostgresMemory
from engine.memory.port import Memory
from engine.memory.store import SQLiteMemory

#: Not part of the port: each implementation is opened its own way (`open_memory` picks one).
CONSTRUCTION = {"open"}


def public_methods(cls: type) -> dict[str, object]:
    return {
        name: getattr(cls, name) for name in dir(cls)
        if not name.startswith("_") and callable(getattr(cls, name)) and name not in CONSTRUCTION
    }


def shape(function) -> tuple[bool, list[tuple[str, object, object, str]]]:
    """Whether it is a coroutine, and its parameters: name, kind, default, annotation (as text,
    without spaces; `self` left out). Return types are compared through the shared suite."""
    params = [
        (p.name, p.kind, p.default, str(p.annotation).replace(" ", ""))
        for p in inspect.signature(function).parameters.values() if p.name != "self"
    ]
    return inspect.iscoroutinefunction(function), params


SQLITE = public_methods(SQLiteMemory)
POSTGRES = public_methods(PostgresMemory)
PORT = public_methods(Memory)


def test_the_port_lists_every_public_method_of_the_memory():
    assert sorted(PORT) == sorted(SQLITE)


@pytest.mark.parametrize("name", sorted(SQLITE))
def test_postgres_has_each_method_of_sqlite_with_the_same_parameters(name):
    assert name in POSTGRES, f"PostgresMemory has no {name}()"
    assert shape(POSTGRES[name]) == shape(SQLITE[name])


@pytest.mark.parametrize("name", sorted(PORT))
def test_each_method_of_the_port_has_the_parameters_of_both_memories(name):
    assert shape(PORT[name]) == shape(SQLITE[name])
    assert name in POSTGRES and shape(PORT[name]) == shape(POSTGRES[name])

