"""Which memory failures the adapters answer with "try again": real ones, from both backends."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from engine.memory.errors import is_transient
from engine.memory.open import open_memory
from engine.models import Task
from tests.pg_server import pg_server  # noqa: F401 - fixture


def task(event_id: str) -> Task:
    return Task(platform="slack", workspace="T1", channel="C1", user="U1", text="hi", event_id=event_id)


async def test_a_locked_sqlite_file_is_worth_asking_again(tmp_path):
    memory = await open_memory(tmp_path / "memory.db")
    blocker = sqlite3.connect(tmp_path / "memory.db")
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        await memory._db.execute("PRAGMA busy_timeout = 50")
        with pytest.raises(sqlite3.OperationalError) as caught:
            await memory.accept_task(task("E1"))
        assert is_transient(caught.value)
    finally:
        blocker.rollback()
        blocker.close()
        await memory.close()


async def test_a_postgresql_connection_cut_under_the_memory_is_worth_asking_again(pg_server):  # noqa: F811
    """The server ends a connection in the middle of a statement (a restart, a failover): the
    statement's caller hears a transient failure, and asking again works."""
    url = pg_server.create_database()
    database = url.rsplit("/", 1)[1]
    memory = await open_memory(url)
    try:
        slow = asyncio.create_task(memory._rows("SELECT pg_sleep(30)"))
        for _ in range(100):  # until the server runs it
            if pg_server.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' "
                              "AND query LIKE 'SELECT pg_sleep%'").strip() == "1":
                break
            await asyncio.sleep(0.05)
        pg_server.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' "
                       "AND query LIKE 'SELECT pg_sleep%'")
        with pytest.raises(Exception) as caught:  # noqa: PT011 - which class is asyncpg's to choose
            await slow
        assert is_transient(caught.value), repr(caught.value)
        assert not (await memory.accept_task(task("E1"))).duplicate  # asked again: taken
    finally:
        await memory.close()


def test_a_mistake_in_the_code_is_not_worth_asking_again():
    assert not is_transient(ValueError("a bug"))
    assert not is_transient(KeyError("gone"))
