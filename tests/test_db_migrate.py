"""`orchestra db migrate --to postgresql://...` and `orchestra db status`, as people run them: a
real SQLite memory filled by the engine (tasks, threads, turns, posts, intents, placeholders,
personas, job runs, a forgotten channel), copied into a real PostgreSQL (tests/pg_server.py) by
a real process; then the PostgreSQL memory is opened and used.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.db_migrate import sqlite_tables
from engine.engine import Engine, EngineConfig
from engine.memory.records import Placeholder
from engine.memory.store import SQLiteMemory
from engine.memory.schema import SCHEMA_VERSION
from engine.models import Task, TaskKind
from engine.personas import PersonaRegistry
from engine.providers import OfflineProvider
from tests.fakes import FakeOutbox
from tests.pg_server import pg_server  # noqa: F401 - a fixture
from tests.test_cli import clean_env, orchestra
from tests.test_startup import free_port, one_clean_message

PASSWORD = "hunter2-migrate-secret"  # the test server trusts local users: any password goes
PLACE = ("slack", "T1")
EVERY_TABLE = {"tasks", "threads", "turns", "thread_ids", "id_counters", "posts", "intents", "placeholders",
               "channels", "persona_sets", "persona_changes", "job_runs"}


def with_password(url: str) -> str:
    return url.replace("postgresql://orchestra@", f"postgresql://orchestra:{PASSWORD}@")


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def task(n: int, text: str, channel: str, kind: TaskKind = TaskKind.INVESTIGATE) -> Task:
    return Task(platform=PLACE[0], workspace=PLACE[1], channel=channel, user="U1", text=text,
                event_id=f"ev-{channel}-{n}", kind=kind, message_id=f"1700000{n}.0001",
                thread=f"1700000{n}.0001" if kind == TaskKind.MESSAGE else None)


async def fill(path: Path) -> None:
    """A memory as a running bot leaves it: everything a table can hold, and a forgotten channel
    (whose channel id must never be given again)."""
    memory = await SQLiteMemory.open(path)
    try:
        engine = Engine(memory, OfflineProvider(), PersonaRegistry.defaults(), EngineConfig())
        engine.register_outbox(PLACE[0], FakeOutbox())
        await engine.run(task(1, "the refund queue stalls every night at 2am", "old"))
        await engine.run(task(2, "intermittent 401s on checkout after the token refresh deploy", "payments"))
        await engine.run(task(3, "sophia, why would the ledger double count refunds?", "payments", TaskKind.MESSAGE))
        await engine.run(task(4, "latency doubled after the schema migration", "search"))
        await memory.forget_channel(*PLACE, "old")
        await memory.record_intent("k-unsettled", task_id=None, platform=PLACE[0], workspace=PLACE[1],
                                   channel="payments", thread=None)
        await memory.record_placeholder(Placeholder(key="k-ph", task_id=None, platform=PLACE[0], workspace=PLACE[1],
                                                    channel="payments", thread="17000002.0001", persona="karen",
                                                    message_id="m-ph"))
        await memory.save_persona_set("yaml:/etc/orchestra/personas.yaml", [{"name": "sophia", "tone": "calm"}])
        await memory.record_persona_change("sophia", source="yaml:/etc/orchestra/personas.yaml", actor="U1",
                                           action="update", changes={"tone": ["warm", "calm"]})
        due = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
        assert await memory.claim_run("digest", due, due)
        await memory.finish_run("digest", due, "ok", "2 digests posted\x00", due)  # SQLite keeps a NUL
    finally:
        await memory.close()


def counts(path: Path) -> dict[str, int]:
    con = sqlite3.connect(path)
    try:
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in sqlite_tables(con)}
    finally:
        con.close()


@pytest.fixture
def memory_file(tmp_path) -> Path:
    path = tmp_path / "memory.db"
    asyncio.run(fill(path))
    return path


def migrate(tmp_path: Path, *args: str, db: Path | str | None = None):
    env = clean_env(tmp_path)
    if db is not None:
        env["ORCHESTRA_DB"] = str(db)
    return orchestra(tmp_path, "db", "migrate", *args, env=env)


# --- the copy ------------------------------------------------------------------------------------


def test_migrate_copies_every_table_checks_the_counts_and_the_memory_works_on_postgresql(tmp_path, pg_server, memory_file):  # noqa: F811
    before = counts(memory_file)
    assert set(before) == EVERY_TABLE and all(before.values()), before  # every table has rows to copy
    url = with_password(pg_server.create_database())
    result = migrate(tmp_path, "--to", url)
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    for table, n in before.items():  # the counts, printed side by side
        assert any(line.split() == [table, f"{n:,}", f"{n:,}"] for line in result.stdout.splitlines()), (table, result.stdout)
    assert "the same on both sides" in result.stdout
    database = database_of(url)
    for table, n in before.items():
        assert int(pg_server.psql(f"SELECT count(*) FROM {table}", database=database)) == n, table
    analysed = pg_server.psql("SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL", database=database)
    assert EVERY_TABLE <= set(analysed.split())  # the planner has statistics before the first replica starts

    async def use_it() -> None:
        from engine.memory.open import open_memory

        lite, pg = await SQLiteMemory.open(memory_file), await open_memory(url)
        try:
            # the same records on both sides
            assert await pg.list_threads(*PLACE, "payments") == await lite.list_threads(*PLACE, "payments")
            thread = (await lite.list_threads(*PLACE, "payments"))[0]
            assert await pg.turns(thread.id) == await lite.turns(thread.id)
            # recall finds a copied turn, in its channel only
            question = "why do checkout 401s follow the token refresh deploy?"
            found = await pg.recall(*PLACE, "payments", question)
            assert found and any("401" in r.text or "token" in r.text.lower() for r in found), found
            elsewhere = await pg.recall(*PLACE, "search", question)
            assert all(r.thread_id.startswith("search-") for r in elsewhere), elsewhere
            # new rows take ids after the copied ones: tasks, turns, thread ids, channels
            max_task = int(pg_server.psql("SELECT max(id) FROM tasks", database=database))
            accepted = await pg.accept_task(task(9, "a new question after the move", "payments"))
            assert accepted.task_id > max_task
            high_water = sqlite3.connect(memory_file).execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'channels'").fetchone()[0]
            engine = Engine(pg, OfflineProvider(), PersonaRegistry.defaults(), EngineConfig())
            engine.register_outbox(PLACE[0], FakeOutbox())
            rec = await engine.run(task(10, "the nightly export is missing rows", "old"))
            assert rec.id == "old-2"  # old-1 was forgotten before the move: never given again
            chan = int(pg_server.psql("SELECT id FROM channels WHERE channel = 'old'", database=database))
            assert chan > high_water
            assert (await pg.last_persona_set("yaml:/etc/orchestra/personas.yaml")).personas == [
                {"name": "sophia", "tone": "calm"}]
            assert [(r.outcome, r.detail) for r in await pg.job_runs("digest")] == [("ok", "2 digests posted\ufffd")]
        finally:
            await lite.close()
            await pg.close()

    asyncio.run(use_it())


def test_a_target_that_holds_data_is_refused_and_left_as_it_was(tmp_path, pg_server, memory_file):  # noqa: F811
    url = with_password(pg_server.create_database())
    assert migrate(tmp_path, "--to", url, db=memory_file).returncode == 0
    database = database_of(url)
    tasks = pg_server.psql("SELECT count(*) FROM tasks", database=database)
    again = migrate(tmp_path, "--to", url, db=memory_file)
    assert again.returncode == 2
    err = one_clean_message(again.stderr)
    assert "already holds data" in err and "tasks" in err and "empty database" in err
    assert PASSWORD not in again.stdout + again.stderr
    assert pg_server.psql("SELECT count(*) FROM tasks", database=database) == tasks


def test_counts_that_differ_fail_and_keep_nothing(tmp_path, pg_server, memory_file):  # noqa: F811
    """A target with a trigger of its own that drops rows: the copy is rolled back, not kept short."""
    from engine.memory.open import open_memory

    url = pg_server.create_database()
    database = database_of(url)

    async def schema() -> None:
        await (await open_memory(url)).close()

    asyncio.run(schema())
    pg_server.psql("CREATE FUNCTION drop_row() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'; "
                   "CREATE TRIGGER drop_runs BEFORE INSERT ON job_runs FOR EACH ROW EXECUTE FUNCTION drop_row()",
                   database=database)
    result = migrate(tmp_path, "--to", url, db=memory_file)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the counts differ in job_runs" in result.stderr and "rolled back" in result.stderr
    assert any(line.split()[:3] == ["job_runs", "1", "0"] and "differs" in line for line in result.stdout.splitlines())
    for table in ("tasks", "turns", "job_runs"):
        assert pg_server.psql(f"SELECT count(*) FROM {table}", database=database).strip() == "0"


def test_migrate_from_a_file_named_with_from(tmp_path, pg_server, memory_file):  # noqa: F811
    url = pg_server.create_database()
    result = migrate(tmp_path, "--from", str(memory_file), "--to", url, db=tmp_path / "other.db")
    assert result.returncode == 0, result.stderr
    assert int(pg_server.psql("SELECT count(*) FROM turns", database=database_of(url))) == counts(memory_file)["turns"]
    assert not (tmp_path / "other.db").exists()


# --- mistakes: exit 2, named, no password ---------------------------------------------------------


@pytest.mark.parametrize(("to", "said"), [
    (f"mysql://orchestra:{PASSWORD}@db.example/memory", "--to must be a PostgreSQL URL"),
    (f"/var/lib/orchestra-{PASSWORD}.db", "--to must be a PostgreSQL URL"),
])
def test_a_target_that_is_not_postgresql_is_refused_without_echoing_it(tmp_path, memory_file, to, said):
    result = migrate(tmp_path, "--to", to, db=memory_file)
    assert result.returncode == 2 and said in result.stderr
    assert PASSWORD not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_target_is_named_without_its_password(tmp_path, memory_file):
    port = free_port()
    result = migrate(tmp_path, "--to", f"postgresql://orchestra:{PASSWORD}@127.0.0.1:{port}/memory", db=memory_file)
    assert result.returncode == 2
    err = result.stderr
    assert "--to" in err and "cannot reach the PostgreSQL server" in err and f"127.0.0.1:{port}" in err
    assert PASSWORD not in result.stdout + err and "Traceback" not in err


def test_a_missing_source_is_named_and_not_created(tmp_path, pg_server):  # noqa: F811
    result = migrate(tmp_path, "--from", str(tmp_path / "nowhere.db"), "--to", pg_server.create_database())
    assert result.returncode == 2 and "no SQLite memory" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "nowhere.db").exists()


def test_migrate_needs_a_sqlite_source_when_orchestra_db_is_postgresql(tmp_path, pg_server):  # noqa: F811
    url = pg_server.create_database()
    result = migrate(tmp_path, "--to", url, db=url)
    assert result.returncode == 2 and "--from PATH" in result.stderr


# --- status --------------------------------------------------------------------------------------


def test_status_names_the_memory_its_version_and_counts_on_both_backends(tmp_path, pg_server, memory_file):  # noqa: F811
    env = clean_env(tmp_path, ORCHESTRA_DB=str(memory_file))
    lite = orchestra(tmp_path, "db", "status", env=env)
    assert lite.returncode == 0, lite.stderr
    assert f"Memory:   {memory_file} (SQLite)" in lite.stdout and f"Schema:   version {SCHEMA_VERSION}" in lite.stdout
    n_turns = counts(memory_file)["turns"]
    assert any(line.split() == ["turns", f"{n_turns:,}"] for line in lite.stdout.splitlines()), lite.stdout

    url = with_password(pg_server.create_database())
    fresh = orchestra(tmp_path, "db", "status", env=clean_env(tmp_path, ORCHESTRA_DB=url))
    assert fresh.returncode == 0 and "none yet" in fresh.stdout and "(PostgreSQL)" in fresh.stdout
    assert migrate(tmp_path, "--to", url, db=memory_file).returncode == 0
    pg = orchestra(tmp_path, "db", "status", env=clean_env(tmp_path, ORCHESTRA_DB=url))
    assert pg.returncode == 0, pg.stderr
    assert "Schema:   version 1" in pg.stdout
    assert any(line.split() == ["turns", f"{n_turns:,}"] for line in pg.stdout.splitlines()), pg.stdout
    assert PASSWORD not in lite.stdout + fresh.stdout + pg.stdout + pg.stderr
    assert not (tmp_path / "nowhere.db").exists()


def test_status_of_a_postgresql_memory_that_cannot_be_reached_is_named_without_its_password(tmp_path):
    port = free_port()
    env = clean_env(tmp_path, ORCHESTRA_DB=f"postgresql://orchestra:{PASSWORD}@127.0.0.1:{port}/memory")
    result = orchestra(tmp_path, "db", "status", env=env)
    assert result.returncode == 2 and result.stdout == ""
    err = one_clean_message(result.stderr)
    assert "ORCHESTRA_DB" in err and "cannot reach the PostgreSQL server" in err and PASSWORD not in err
