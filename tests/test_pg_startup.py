"""Starting Orchestra on PostgreSQL as people do: real `orchestra` and `orchestra serve` processes
against the PostgreSQL server the tests start (tests/pg_server.py), and every way that start can
go wrong (nothing listening, no such database or user, a newer schema, no driver). Each must end
with one message naming ORCHESTRA_DB and what to check, exit code 2, and never the password.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.pg_server import pg_server  # noqa: F401 - a fixture
from tests.test_cli import clean_env, orchestra
from tests.test_startup import finished, free_port, one_clean_message, read_until, start, stop

PASSWORD = "hunter2-pg-secret"  # the test server trusts every local user: any password is "right"
API_TOKEN = "pg-startup-api-token-0123456789"


def with_password(url: str) -> str:
    """The test server's URL with a password in it, as people write one."""
    return url.replace("postgresql://orchestra@", f"postgresql://orchestra:{PASSWORD}@")


@pytest.fixture
def pg_db(pg_server) -> str:  # noqa: F811
    return with_password(pg_server.create_database())


def pg_env(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    return clean_env(tmp_path, ORCHESTRA_DB=url, **extra)


def no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text, text


# --- it runs -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_serve_on_postgresql_answers_and_says_which_memory_without_the_password(tmp_path, pg_server, pg_db):  # noqa: F811
    port = free_port()
    proc = await start(tmp_path, "serve", "--host", "127.0.0.1", "--port", str(port),
                       env=pg_env(tmp_path, pg_db, ORCHESTRA_API_TOKEN=API_TOKEN, ORCHESTRA_LOG_LEVEL="DEBUG"))
    try:
        seen = await read_until(proc, r"^Serving on")
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            r = await client.post("/api/tasks", json={"text": "sophia, what is a retry storm?"},
                                  headers={**auth, "Idempotency-Key": "pg-1"})
            assert r.status_code == 202, r.text
            for _ in range(200):
                task = (await client.get(f"/api/tasks/{r.json()['id']}", headers=auth)).json()
                if task["status"] == "done":
                    break
                await asyncio.sleep(0.1)
            assert task["status"] == "done" and task["replies"][0]["persona"] == "sophia"
    finally:
        code, out, err = await stop(proc)
    database = pg_db.rsplit("/", 1)[1]
    assert f"Memory:    postgresql://orchestra@127.0.0.1:{pg_server.port}/{database} (PostgreSQL)" in seen
    assert code == 0 and "Traceback" not in err
    no_password(seen, out, err)
    # the task is in PostgreSQL, not in a SQLite file somewhere
    assert pg_server.psql("SELECT count(*) FROM tasks", database=database).strip() == "1"
    assert not list(tmp_path.rglob("*.db"))


def test_the_terminal_chat_on_postgresql_remembers_across_runs(tmp_path, pg_db):
    env = pg_env(tmp_path, pg_db)
    first = orchestra(tmp_path, "--channel", "ops", input="@sophia why do retries pile up after a deploy?\n", env=env)
    assert first.returncode == 0, first.stderr
    assert "(PostgreSQL)" in first.stdout and "Sophia" in first.stdout
    listed = orchestra(tmp_path, "memory", "list", "--channel", "ops", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "ops-c1" in listed.stdout and "retries pile up" in listed.stdout
    no_password(first.stdout, first.stderr, listed.stdout, listed.stderr)
    assert not list(tmp_path.rglob("*.db"))


# --- it cannot start: one message, exit 2, no password ------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("command", [(), ("serve",)])
async def test_nothing_listening_stops_start_up_naming_the_setting(tmp_path, command):
    port = free_port()  # nothing listens there
    url = f"postgresql://orchestra:{PASSWORD}@127.0.0.1:{port}/orchestra"
    code, out, err = await finished(tmp_path, *command, env=pg_env(tmp_path, url, ORCHESTRA_API_TOKEN=API_TOKEN),
                                    stdin=asyncio.subprocess.PIPE)  # `orchestra`: lines piped in
    assert code == 2 and out == ""
    err = one_clean_message(err)
    assert "ORCHESTRA_DB" in err and "cannot reach the PostgreSQL server" in err and f"127.0.0.1:{port}" in err
    no_password(err)


def test_a_database_that_does_not_exist_is_named(tmp_path, pg_server):  # noqa: F811
    url = with_password(pg_server.url("no_such_memory"))
    result = orchestra(tmp_path, "memory", "list", env=pg_env(tmp_path, url))
    assert result.returncode == 2 and result.stdout == ""
    err = one_clean_message(result.stderr)
    assert "ORCHESTRA_DB" in err and "no database 'no_such_memory'" in err and "createdb no_such_memory" in err
    no_password(err)


def test_a_user_the_server_does_not_know_is_named(tmp_path, pg_server):  # noqa: F811
    url = pg_server.url("postgres").replace("postgresql://orchestra@", f"postgresql://nobody:{PASSWORD}@")
    result = orchestra(tmp_path, "memory", "list", env=pg_env(tmp_path, url))
    assert result.returncode == 2 and result.stdout == ""
    err = one_clean_message(result.stderr)
    assert "ORCHESTRA_DB" in err and "refused user nobody" in err
    no_password(err)


def test_a_postgresql_memory_from_a_newer_orchestra_says_to_upgrade(tmp_path, pg_server):  # noqa: F811
    url = pg_server.create_database()
    database = url.rsplit("/", 1)[1]
    pg_server.psql("CREATE TABLE orchestra_schema (version INTEGER NOT NULL); INSERT INTO orchestra_schema VALUES (99)",
                   database=database)
    result = orchestra(tmp_path, "memory", "list", env=pg_env(tmp_path, with_password(url)))
    assert result.returncode == 2 and result.stdout == ""
    err = one_clean_message(result.stderr)
    assert "ORCHESTRA_DB" in err and "newer Orchestra" in err and "upgrade" in err
    no_password(err)
    assert pg_server.psql("SELECT version FROM orchestra_schema", database=database).strip() == "99"


def test_postgresql_without_its_driver_says_what_to_install(tmp_path):
    shadow = tmp_path / "no-asyncpg"
    (shadow / "asyncpg").mkdir(parents=True)  # stands in for a machine without the postgres extra
    (shadow / "asyncpg" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'asyncpg'\", name='asyncpg')\n", encoding="utf-8")
    env = pg_env(tmp_path, f"postgresql://orchestra:{PASSWORD}@127.0.0.1:{free_port()}/orchestra")
    env["PYTHONPATH"] = f"{shadow}:{env['PYTHONPATH']}"
    result = orchestra(tmp_path, "memory", "list", env=env)
    assert result.returncode == 2 and result.stdout == ""
    err = one_clean_message(result.stderr)
    assert "ORCHESTRA_DB" in err and "pip install 'orchestra-personas[postgres]'" in err
    no_password(err)
