"""What only the PostgreSQL memory must guarantee: several processes (replicas) on one database.

Each replica has its own pool; here two `PostgresMemory` instances (two pools) on one database
stand in for two replicas. The shared behaviour of both backends is tests/test_memory.py.
"""

from __future__ import annotations

import asyncio

import pytest

from engine.memory.connection import MemoryVersionError
from engine.memory.pg.schema import SCHEMA_VERSION
from engine.memory.pg.store import PostgresMemory
from engine.models import Task
from tests.pg_server import pg_server, pg_url  # noqa: F401 - fixtures


def task(event_id: str) -> Task:
    return Task(platform="slack", workspace="T1", channel="C1", user="U1", text="hello", event_id=event_id)


@pytest.fixture
async def replicas(pg_url):  # noqa: F811 - the imported fixture
    """Two memories on one database, as two replicas would have."""
    a = await PostgresMemory.open(pg_url, min_size=1, max_size=10)
    b = await PostgresMemory.open(pg_url, min_size=1, max_size=10)
    yield a, b
    await a.close()
    await b.close()


async def test_an_event_accepted_at_once_by_two_replicas_is_accepted_once(replicas):
    a, b = replicas
    events = [f"E{i}" for i in range(60)]
    calls = [replica.accept_task(task(e)) for e in events for replica in (a, b, a, b)]  # and retries
    results = await asyncio.gather(*calls)
    by_event: dict[str, list] = {}
    for i, result in enumerate(results):
        by_event.setdefault(events[i // 4], []).append(result)
    for event, answers in by_event.items():
        assert sum(not r.duplicate for r in answers) == 1, event  # exactly one caller hears "new"
        assert len({r.task_id for r in answers}) == 1, event  # and every caller the same task
    assert len(await a.unfinished_tasks()) == len(events)


async def test_two_replicas_allocating_thread_ids_at_once_get_distinct_ids(replicas):
    a, b = replicas
    calls = [(a if i % 2 else b).thread_id_for_task(i, "payments-") for i in range(1, 81)]
    ids = await asyncio.gather(*calls)
    assert sorted(ids, key=lambda s: int(s.rsplit("-", 1)[1])) == [f"payments-{n}" for n in range(1, 81)]
    # a task resumed on the other replica finds the same id
    again = await asyncio.gather(*[(b if i % 2 else a).thread_id_for_task(i, "payments-") for i in range(1, 81)])
    assert again == ids


async def test_two_replicas_adding_turns_to_one_channel_at_once(replicas):
    from engine.memory.records import ThreadKind, ThreadRecord, TurnRecord, TurnRole

    a, b = replicas
    for id_ in ("inv-1", "inv-2"):
        await a.create_thread(ThreadRecord(id=id_, kind=ThreadKind.INVESTIGATION, platform="slack",
                                           workspace="T1", channel="C1", thread=None, title=id_))
    calls = [
        (a if i % 2 else b).add_turn(TurnRecord(thread_id=f"inv-{1 + i % 2}", role=TurnRole.PERSONA,
                                                author="sophia", text=f"kafka lag {i}"))
        for i in range(40)
    ]
    stored = await asyncio.gather(*calls)
    for thread_id in ("inv-1", "inv-2"):
        seqs = [t.seq for t in await b.turns(thread_id)]
        assert seqs == list(range(1, 21))
    assert len({t.id for t in stored}) == 40
    assert await a.count_turns("slack", "T1", "C1") == 40
    assert len(await b.recall("slack", "T1", "C1", "kafka lag")) == 5


async def test_a_newer_database_is_refused_without_its_password(pg_server, pg_url):  # noqa: F811 - the imported fixtures
    memory = await PostgresMemory.open(pg_url)
    await memory.close()
    database = pg_url.rsplit("/", 1)[1]
    pg_server.psql(f"UPDATE orchestra_schema SET version = {SCHEMA_VERSION + 1}", database=database)
    with_password = pg_url.replace("://orchestra@", "://orchestra:s3cret-pw@")
    assert "s3cret-pw" in with_password  # (the test server trusts any password)
    with pytest.raises(MemoryVersionError) as refused:
        await PostgresMemory.open(with_password)
    message = str(refused.value)
    assert "newer Orchestra" in message and f"version {SCHEMA_VERSION + 1}" in message
    assert "s3cret-pw" not in message and "s3cret-pw" not in repr(refused.value.args)
    assert "s3cret-pw" not in str(refused.value.path)


async def test_replicas_opening_an_empty_database_at_once_create_it_once(pg_server, pg_url):  # noqa: F811 - the imported fixtures
    opened = await asyncio.gather(*(PostgresMemory.open(pg_url, min_size=1, max_size=2) for _ in range(4)))
    try:
        database = pg_url.rsplit("/", 1)[1]
        assert pg_server.psql("SELECT count(*), max(version) FROM orchestra_schema", database=database).strip() \
            == f"1|{SCHEMA_VERSION}"
        accepted = await asyncio.gather(*(m.accept_task(task("E1")) for m in opened))
        assert sum(not r.duplicate for r in accepted) == 1
    finally:
        for memory in opened:
            await memory.close()


async def test_recall_past_its_window_finds_what_reading_everything_finds(pg_url):  # noqa: F811
    """Recall reads a channel's newest `recall_window` turns, then asks the GIN index for older
    matches of the words it found too few of (engine.memory.pg.recall): with a tiny window the
    answers are the same as when the window holds the whole channel."""
    from datetime import timedelta

    from engine.memory.records import ThreadKind, ThreadRecord, TurnRecord, TurnRole
    from engine.models import utcnow

    memory = await PostgresMemory.open(pg_url, min_size=1, max_size=4)
    try:
        def thread(id_, channel="C1"):
            return ThreadRecord(id=id_, kind=ThreadKind.INVESTIGATION, platform="slack", workspace="T1",
                                channel=channel, thread=None, title=f"about {id_}")

        def turn(thread_id, text, days_ago=0, **kw):
            return TurnRecord(thread_id=thread_id, role=kw.pop("role", TurnRole.PERSONA), author="sophia",
                              text=text, created_at=utcnow() - timedelta(days=days_ago), **kw)

        for id_, channel in (("old", "C1"), ("busy", "C1"), ("current", "C1"), ("elsewhere", "C2")):
            await memory.create_thread(thread(id_, channel))
        await memory.add_turn(turn("old", "zookeeper lost quorum during the deploy", days_ago=200))
        await memory.add_turn(turn("old", "postgres vacuum was late", days_ago=150, role=TurnRole.HUMAN))
        await memory.add_turn(turn("old", "zookeeper rehearsal", days_ago=100, model="offline"))  # not evidence
        for i in range(30):
            await memory.add_turn(turn("busy", f"deploy number {i} went fine", days_ago=30 - i))
            await memory.add_turn(turn("elsewhere", f"zookeeper quorum again {i}"))
        for i in range(6):
            await memory.add_turn(turn("current", f"zookeeper and postgres vacuum, take {i}"))

        async def answers(**kw):
            return {
                query: [(r.thread_id, r.text, pytest.approx(r.score, rel=1e-6)) for r in await memory.recall(
                    "slack", "T1", "C1", query, limit=10, **kw)]
                for query in ("deploy zookeeper quorum", "zookeeper", "deploy", "postgres vacuum", "rehearsal")
            }

        memory.recall_window = 100_000  # the whole channel in the window: nothing asked of GIN
        whole = {ex: await answers(exclude_thread=ex) for ex in (None, "current")}
        memory.recall_window = 4
        assert {ex: await answers(exclude_thread=ex) for ex in (None, "current")} == whole
        assert whole["current"]["zookeeper"][0][0] == "old"  # found beyond the window, in its channel
        assert {t for t, _, _ in whole[None]["zookeeper"]} == {"old", "current"}  # never C2's
        assert whole[None]["rehearsal"] == []  # the offline rehearsal is never evidence
        assert whole["current"]["postgres vacuum"][0][0] == "old"
    finally:
        await memory.close()


async def test_a_nul_in_an_event_key_is_refused_alone(replicas):
    """PostgreSQL's text cannot hold NUL: such an event can never be stored, so it is refused
    (TaskRefused) and the others are stored."""
    from engine.models import TaskRefused

    a, _ = replicas
    results = await asyncio.gather(a.accept_task(task("ok-1")), a.accept_task(task("bad\x00id")),
                                   a.accept_task(task("ok-2")), return_exceptions=True)
    assert isinstance(results[1], TaskRefused)
    assert sorted(s.task.event_id for s in await a.unfinished_tasks()) == ["ok-1", "ok-2"]


async def test_a_statement_costs_one_round_trip_and_a_broken_transaction_is_not_left_open(pg_url):  # noqa: F811
    """A connection goes back to the pool without asyncpg's reset query (one more transaction a
    statement); a transaction that broke is still rolled back before the connection is reused,
    and the connection that listened for freed lanes goes back listening no more."""
    memory = await PostgresMemory.open(pg_url, min_size=1, max_size=1)  # one connection: always the same
    watcher = await PostgresMemory.open(pg_url, min_size=1, max_size=1)
    try:
        await memory._write("SELECT 'orchestra-probe' AS probe")
        seen = await watcher._rows("SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        assert [r["query"] for r in seen] == ["SELECT 'orchestra-probe' AS probe"]  # its last statement
        with pytest.raises(RuntimeError):
            async with memory._transaction() as con:
                await con.execute("INSERT INTO replicas (id, seen_at) VALUES ('half-done', now())")
                raise RuntimeError("broke halfway")
        assert await memory._rows("SELECT id FROM replicas") == []  # rolled back; the connection works
        unlisten = await memory.listen_lanes(lambda key: None)  # takes the one connection and LISTENs
        await unlisten()
        assert await memory._rows("SELECT * FROM pg_listening_channels()") == []  # it went back unlistened
    finally:
        await memory.close()
        await watcher.close()
