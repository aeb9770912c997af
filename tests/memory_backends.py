"""The memory's two backends for one shared test suite: SQLite (a real file) and PostgreSQL (a
real server the tests start: `tests.pg_server`).

A test module that wants its memory tests to run on both imports these fixtures:

    from tests.memory_backends import memory_db, pg_server  # noqa: F401 (fixtures)

`memory_db` is where a memory lives (a SQLite path or a PostgreSQL URL, a fresh one per test),
once per backend; open it with `engine.memory.open.open_memory`.
"""

from __future__ import annotations

import pytest

from tests.pg_server import pg_server  # noqa: F401 - a fixture, used through memory_db

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def memory_db(request, tmp_path):
    """A fresh memory location: `tmp_path/memory.db`, or a new database on the test PostgreSQL."""
    if request.param == "sqlite":
        return tmp_path / "memory.db"
    return request.getfixturevalue("pg_server").create_database()
