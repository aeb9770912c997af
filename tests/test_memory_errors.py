"""Which memory failures the adapters answer with "try again": real ones, from both backends."""

from __future__ import annotations

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
    url = pg_server.create_database()
    memory = await open_memory(url)
    try:
        assert not (await memory.accept_task(task("E1"))).duplicate
        database = url.rsplit("/", 1)[1]
        pg_server.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
        failures = []
        for n in range(2, 6):  # the pool's idle connections were all cut: the next uses fail
            try:
                await memory.accept_task(task(f"E{n}"))
            except Exception as e:  # noqa: BLE001 - what the adapters would see
                failures.append(e)
        assert failures and all(is_transient(e) for e in failures)
    finally:
        await memory.close()


def test_a_mistake_in_the_code_is_not_worth_asking_again():
    assert not is_transient(ValueError("a bug"))
    assert not is_transient(KeyError("gone"))
