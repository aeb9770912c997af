"""The memory, on both backends: dedupe, durability, turns, posts, recall, export, forget.

One suite for SQLite (real files) and PostgreSQL (a real server the tests start): the `memory`
fixture opens `memory_db` (tests.memory_backends) with `open_memory`, once per backend. Tests that
look at SQLite's own internals (PRAGMA, the FTS table, the WAL, its locks, migrations from older
SQLite versions) use `sqlite_memory` or a SQLite path and say so. What only PostgreSQL must
guarantee (several processes on one database): tests/test_memory_postgres.py.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from engine.memory import (
    Phase,
    SQLiteMemory,
    TaskStatus,
    ThreadKind,
    ThreadRecord,
    ThreadStatus,
    TurnRecord,
    TurnRole,
    fts_terms,
)
from engine.memory.open import open_memory
from engine.memory.recall import PER_TERM
from engine.memory.schema import SCHEMA_VERSION
from engine.models import Task, utcnow
from tests.memory_backends import memory_db, pg_server  # noqa: F401 - fixtures

SLACK = ("slack", "T1", "C1")


@pytest.fixture
async def memory(memory_db):  # noqa: F811 - the imported fixture
    """The memory on each backend (a fresh SQLite file, a fresh PostgreSQL database)."""
    mem = await open_memory(memory_db)
    yield mem
    await mem.close()


@pytest.fixture
async def sqlite_memory(tmp_path):
    """SQLite only: for tests that look at SQLite's internals (its connection, locks, FTS)."""
    mem = await SQLiteMemory.open(tmp_path / "memory.db")
    yield mem
    await mem.close()


def on_sqlite(memory) -> bool:
    return isinstance(memory, SQLiteMemory)


async def indexed_turns(memory, word: str) -> int:
    """How many turns the backend's full-text index holds `word` in (FTS5 table / tsvector)."""
    if on_sqlite(memory):
        rows = await memory._rows("SELECT count(*) FROM turns_fts WHERE turns_fts MATCH ?", (word,))
    else:
        rows = await memory._rows("SELECT count(*) FROM turns WHERE tsv @@ plainto_tsquery('simple', $1)", word)
    return rows[0][0]


def task(event_id: str, platform: str = "slack", workspace: str = "T1", channel: str = "C1",
         text: str = "hello") -> Task:
    return Task(platform=platform, workspace=workspace, channel=channel, user="U1", text=text,
                event_id=event_id)


def thread(id_: str, place=SLACK, ts: str | None = None, **kw) -> ThreadRecord:
    platform, workspace, channel = place
    return ThreadRecord(id=id_, kind=kw.pop("kind", ThreadKind.INVESTIGATION), platform=platform,
                        workspace=workspace, channel=channel, thread=ts,
                        title=kw.pop("title", f"question of {id_}"), **kw)


def turn(thread_id: str, text: str, **kw) -> TurnRecord:
    return TurnRecord(thread_id=thread_id, role=kw.pop("role", TurnRole.PERSONA),
                      author=kw.pop("author", "sophia"), text=text, **kw)


# -- opening (SQLite only: PostgreSQL's opening is in tests/test_memory_postgres.py) -------------


async def test_open_creates_parent_dirs_and_a_versioned_wal_schema(tmp_path):
    path = tmp_path / "a" / "b" / "memory.db"
    mem = await SQLiteMemory.open(path)
    await mem.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    mem = await SQLiteMemory.open(path)  # reopening an existing schema is fine
    await mem.close()


async def test_open_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "memory.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(RuntimeError, match="schema version"):
        await SQLiteMemory.open(path)


# -- tasks ---------------------------------------------------------------------------------------


async def test_same_event_twice_is_one_task(memory):
    first = await memory.accept_task(task("Ev1"))
    again = await memory.accept_task(task("Ev1", text="retry"))
    assert not first.duplicate
    assert again.duplicate and again.task_id == first.task_id
    stored = await memory.get_task(first.task_id)
    assert stored.task.text == "hello" and stored.status == TaskStatus.ACCEPTED


async def test_same_event_id_elsewhere_is_another_task(memory):
    a = await memory.accept_task(task("Ev1"))
    other_platform = await memory.accept_task(task("Ev1", platform="discord"))
    other_workspace = await memory.accept_task(task("Ev1", workspace="T2"))
    ids = {a.task_id, other_platform.task_id, other_workspace.task_id}
    assert len(ids) == 3
    assert not other_platform.duplicate and not other_workspace.duplicate


async def test_burst_of_200_accepts(memory_db):  # noqa: F811 - the imported fixture
    mem = await open_memory(memory_db)
    burst = [task(f"E{i % 150}") for i in range(200)]  # 50 retries inside the burst
    results = await asyncio.gather(*(mem.accept_task(t) for t in burst))
    by_event: dict[str, set[int]] = {}
    for t, r in zip(burst, results):
        by_event.setdefault(t.event_id, set()).add(r.task_id)
    assert all(len(ids) == 1 for ids in by_event.values())
    assert len({r.task_id for r in results}) == 150
    assert sum(not r.duplicate for r in results) == 150
    for event in by_event:  # exactly one caller per event hears "new"
        assert sum(not r.duplicate for t, r in zip(burst, results) if t.event_id == event) == 1
    # persisted: another connection (another pool) sees all of them
    other = await open_memory(memory_db)
    assert len(await other.unfinished_tasks()) == 150
    await other.close()
    await mem.close()


async def test_accepted_work_survives_a_crash_and_resumes(memory_db):  # noqa: F811 - the imported fixture
    mem = await open_memory(memory_db)
    a = await mem.accept_task(task("E1"))
    b = await mem.accept_task(task("E2"))
    c = await mem.accept_task(task("E3"))
    d = await mem.accept_task(task("E4"))
    await mem.set_task_status(b.task_id, TaskStatus.RUNNING)
    await mem.set_task_status(c.task_id, TaskStatus.DONE)
    await mem.set_task_status(d.task_id, TaskStatus.FAILED, error="model timed out")
    await mem.create_thread(thread("inv-1", ts="100.1"))
    await mem.add_turn(turn("inv-1", "first finding", task_id=b.task_id))
    # "crash": the first store is never closed; a new process opens the same memory
    survivor = await open_memory(memory_db)
    unfinished = await survivor.unfinished_tasks()
    assert [t.id for t in unfinished] == [a.task_id, b.task_id]
    assert [t.status for t in unfinished] == [TaskStatus.ACCEPTED, TaskStatus.RUNNING]
    assert unfinished[0].task.event_id == "E1"
    failed = await survivor.get_task(d.task_id)
    assert failed.status == TaskStatus.FAILED and failed.error == "model timed out"
    assert [t.text for t in await survivor.turns("inv-1")] == ["first finding"]
    await survivor.close()
    await mem.close()
    reopened = await open_memory(memory_db)
    assert [t.id for t in await reopened.unfinished_tasks()] == [a.task_id, b.task_id]
    await reopened.close()


async def test_unknown_task(memory):
    assert await memory.get_task(999) is None
    with pytest.raises(KeyError):
        await memory.set_task_status(999, TaskStatus.DONE)


# -- threads -------------------------------------------------------------------------------------


async def test_threads_find_update_list_and_stall(memory):
    inv = await memory.create_thread(thread("inv-1", ts="100.1", lead="sophia"))
    await memory.create_thread(thread("conv-1", ts="200.1", kind=ThreadKind.CONVERSATION))
    await memory.create_thread(thread("inv-2", place=("slack", "T1", "C2"), ts="100.1"))
    assert await memory.get_thread("inv-1") == inv
    found = await memory.find_thread("slack", "T1", "C1", "100.1")
    assert found.id == "inv-1" and found.lead == "sophia"
    assert (await memory.find_thread("slack", "T1", "C2", "100.1")).id == "inv-2"
    assert await memory.find_thread("slack", "T2", "C1", "100.1") is None
    assert await memory.find_thread("slack", "T1", "C1", "999.9") is None

    updated = await memory.update_thread(
        inv.model_copy(update={"phase": Phase.VALIDATION, "turn_count": 3,
                               "status": ThreadStatus.PAUSED})
    )
    assert updated.updated_at > inv.updated_at
    assert await memory.get_thread("inv-1") == updated

    listed = await memory.list_threads(*SLACK)
    assert [s.id for s in listed] == ["inv-1", "conv-1"]  # newest (updated) first
    assert listed[0].turns == 3 and listed[0].phase == Phase.VALIDATION
    paused = await memory.list_threads(*SLACK, statuses={ThreadStatus.PAUSED})
    assert [s.id for s in paused] == ["inv-1"]
    assert await memory.list_threads(*SLACK, statuses=set()) == []

    later = utcnow() + timedelta(seconds=1)
    stalled = await memory.stalled_threads(later)
    assert {t.id for t in stalled} == {"inv-1", "inv-2"}  # conversations never stall
    assert await memory.stalled_threads(inv.created_at - timedelta(days=1)) == []
    await memory.update_thread(updated.model_copy(update={"status": ThreadStatus.COMPLETE}))
    assert {t.id for t in await memory.stalled_threads(later)} == {"inv-2"}


async def test_update_thread_of_unknown_or_moved_thread(memory):
    with pytest.raises(KeyError):
        await memory.update_thread(thread("nope"))
    rec = await memory.create_thread(thread("inv-1"))
    with pytest.raises(ValueError):
        await memory.update_thread(rec.model_copy(update={"channel": "C9"}))


async def test_root_post_id_becomes_findable(memory):
    rec = await memory.create_thread(thread("inv-1"))  # no platform thread yet
    await memory.update_thread(rec.model_copy(update={"thread": "555.1"}))
    assert (await memory.find_thread(*SLACK, "555.1")).id == "inv-1"


# -- turns ---------------------------------------------------------------------------------------


async def test_turns_get_seq_per_thread_in_order(memory):
    await memory.create_thread(thread("inv-1"))
    await memory.create_thread(thread("inv-2"))
    a1 = await memory.add_turn(turn("inv-1", "a one"))
    b1 = await memory.add_turn(turn("inv-2", "b one"))
    a2 = await memory.add_turn(turn("inv-1", "a two", role=TurnRole.HUMAN, author="U1"))
    assert (a1.seq, b1.seq, a2.seq) == (1, 1, 2)
    assert a1.id and b1.id and a2.id and len({a1.id, b1.id, a2.id}) == 3
    more = await asyncio.gather(*(memory.add_turn(turn("inv-1", f"c {i}")) for i in range(20)))
    assert sorted(t.seq for t in more) == list(range(3, 23))
    stored = await memory.turns("inv-1")
    assert [t.seq for t in stored] == list(range(1, 23))
    assert stored[1].role == TurnRole.HUMAN and stored[1].author == "U1"
    assert await memory.turns("nope") == []
    assert await memory.count_turns(*SLACK) == 23


async def test_turn_round_trips_every_field(memory):
    await memory.create_thread(thread("inv-1"))
    when = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    original = turn("inv-1", "hypothesis: the cache", task_id=7, step=2, mode="researcher",
                    findings={"hypothesis": "cache", "evidence": ["a", "b"], "n": 3},
                    structured=False, confidence="medium",
                    route={"scores": {"critic": 0.7}, "reason": "low confidence"},
                    input_tokens=120, output_tokens=80, model="m-1", created_at=when)
    saved = await memory.add_turn(original)
    [stored] = await memory.turns("inv-1")
    assert stored == saved == original.model_copy(update={"id": saved.id, "seq": 1})


async def test_a_nul_character_in_words_is_stored_not_refused(memory):
    """PostgreSQL's text cannot hold NUL: it keeps the words with U+FFFD in its place."""
    from engine.memory.records import TaskStatus

    await memory.create_thread(thread("inv-1", title="odd \x00 title"))
    saved = await memory.add_turn(turn("inv-1", "a \x00 b", role=TurnRole.HUMAN, author="U1"))
    [stored] = await memory.turns("inv-1")
    assert stored.id == saved.id and stored.text in ("a \x00 b", "a \ufffd b")
    assert (await memory.get_thread("inv-1")).title in ("odd \x00 title", "odd \ufffd title")
    accepted = await memory.accept_task(task("e1", text="nul \x00 inside"))  # the body is JSON: escaped
    assert (await memory.get_task(accepted.task_id)).task.text == "nul \x00 inside"
    await memory.set_task_status(accepted.task_id, TaskStatus.FAILED, error="bad \x00 reply")
    assert (await memory.get_task(accepted.task_id)).error in ("bad \x00 reply", "bad \ufffd reply")


async def test_add_turn_to_unknown_thread(memory):
    with pytest.raises(KeyError):
        await memory.add_turn(turn("nope", "text"))


async def test_turn_for_task(memory):
    await memory.create_thread(thread("inv-1"))
    await memory.add_turn(turn("inv-1", "person", role=TurnRole.HUMAN, author="U1", task_id=5))
    first = await memory.add_turn(turn("inv-1", "step zero", task_id=5, step=0))
    second = await memory.add_turn(turn("inv-1", "step one", task_id=5, step=1))
    assert await memory.turn_for_task(5, 0) == first
    assert await memory.turn_for_task(5, 1) == second
    assert await memory.turn_for_task(5, 2) is None
    assert await memory.turn_for_task(6, 0) is None


# -- posts ---------------------------------------------------------------------------------------


async def test_posts_and_persona_for_message(memory):
    await memory.record_post("5:0", task_id=5, platform="slack", workspace="T1", channel="C1",
                             thread="100.1", message_id="100.2", persona="sophia",
                             thread_id="inv-1")
    await memory.record_post("5:0", task_id=5, platform="slack", workspace="T1", channel="C1",
                             thread="100.1", message_id="100.2", persona="sophia",
                             thread_id="inv-1")  # recorded twice: harmless
    await memory.record_post("5:1", task_id=5, platform="slack", workspace="T1", channel="C1",
                             thread="100.1", message_id="100.3", persona="karen",
                             thread_id="inv-1")
    assert await memory.post_for_key("5:0") == "100.2"
    assert await memory.post_for_key("5:9") is None
    assert await memory.persona_for_message("slack", "T1", "C1", "100.3") == "karen"
    assert await memory.persona_for_message("slack", "T1", "C2", "100.3") is None
    assert await memory.persona_for_message("slack", "T2", "C1", "100.3") is None
    assert await memory.persona_for_message("slack", "T1", "C1", "nope") is None


async def test_recording_a_post_settles_its_intent_and_the_placeholder_it_replaced(memory):
    from engine.memory.records import Placeholder

    place = {"platform": "slack", "workspace": "T1", "channel": "C1"}
    await memory.record_intent("5:0", task_id=5, thread="100.1", **place)
    await memory.record_intent("5:0", task_id=5, thread="100.1", **place)  # twice: harmless
    await memory.record_intent("5:1", task_id=5, thread="100.1", **place)
    shown = Placeholder(key="5:p", task_id=5, thread="100.1", persona="sophia", message_id=None, **place)
    await memory.record_placeholder(shown)  # before it is posted...
    await memory.record_placeholder(shown.model_copy(update={"message_id": "100.2"}))  # ...and once it is
    other = Placeholder(key="6:p", task_id=6, thread="200.1", persona="karen", message_id="200.2", **place)
    await memory.record_placeholder(other)
    assert await memory.has_intent("5:0") and await memory.has_intent("5:1")
    assert await memory.placeholder_for("slack", "T1", "C1", "100.1", "sophia") == \
        shown.model_copy(update={"message_id": "100.2"})
    assert [p.key for p in await memory.placeholders()] == ["5:p", "6:p"]
    assert [p.key for p in await memory.placeholders(task_id=6)] == ["6:p"]

    # the persona's answer replaces the placeholder's message: both settle with the post
    await memory.record_post("5:0", task_id=5, thread="100.1", message_id="100.2", persona="sophia",
                             thread_id="inv-1", **place)
    assert not await memory.has_intent("5:0")
    assert await memory.has_intent("5:1")  # another step's intent stays open
    assert await memory.placeholder_for("slack", "T1", "C1", "100.1", "sophia") is None
    assert [p.key for p in await memory.placeholders()] == ["6:p"]  # another thread's stays
    await memory.drop_placeholder("6:p")
    assert await memory.placeholders() == []
    assert await memory.placeholder_for("slack", "T1", "C1", "200.1", "karen") is None


# -- recall --------------------------------------------------------------------------------------


async def test_recall_stays_in_its_channel_and_workspace(memory):
    places = {
        "a": SLACK,
        "other-channel": ("slack", "T1", "C2"),
        "other-workspace": ("slack", "T2", "C1"),  # same channel id, another workspace
        "other-platform": ("discord", "T1", "C1"),
    }
    for name, place in places.items():
        await memory.create_thread(thread(f"inv-{name}", place=place))
        await memory.add_turn(turn(f"inv-{name}", f"kafka consumer lag in {name}"))
    for name, place in places.items():
        found = await memory.recall(*place, "kafka consumer lag")
        assert [r.thread_id for r in found] == [f"inv-{name}"]
    assert await memory.recall("slack", "T3", "C1", "kafka consumer lag") == []


async def test_recall_ranks_relevant_above_irrelevant(memory):
    await memory.create_thread(thread("inv-1", title="checkout latency"))
    await memory.add_turn(turn("inv-1", "Checkout latency comes from the payment gateway retries."))
    await memory.add_turn(turn("inv-1", "The marketing budget for Q3 is settled."))
    await memory.add_turn(turn("inv-1", "Latency dashboards are in Grafana."))
    found = await memory.recall(*SLACK, "Why is checkout latency high? payment gateway?")
    assert found[0].text.startswith("Checkout latency comes from the payment gateway")
    assert found[0].title == "checkout latency" and found[0].author == "sophia"
    assert all("marketing" not in r.text for r in found)
    assert [r.score for r in found] == sorted((r.score for r in found), reverse=True)


async def test_recall_prefers_the_newer_of_equally_relevant_turns(memory):
    await memory.create_thread(thread("inv-old"))
    await memory.create_thread(thread("inv-new"))
    now = utcnow()
    # stored newest first, so that insertion order cannot be what decides
    await memory.add_turn(turn("inv-new", "redis eviction storm", created_at=now))
    await memory.add_turn(turn("inv-old", "redis eviction storm",
                               created_at=now - timedelta(days=90)))
    found = await memory.recall(*SLACK, "redis eviction")
    assert [r.thread_id for r in found] == ["inv-new", "inv-old"]
    assert found[0].score > found[1].score


async def test_recall_finds_an_old_rare_match_under_many_newer_common_ones(memory):
    await memory.create_thread(thread("inv-old", title="the zookeeper outage"))
    await memory.add_turn(turn("inv-old", "The deploy failed because zookeeper lost quorum.",
                               created_at=utcnow() - timedelta(days=200)))
    await memory.create_thread(thread("inv-busy"))
    for i in range(PER_TERM * 3):
        await memory.add_turn(turn("inv-busy", f"deploy number {i} went fine"))
    found = await memory.recall(*SLACK, "deploy zookeeper quorum")
    assert found[0].thread_id == "inv-old"


async def test_recall_excludes_the_current_thread(memory):
    await memory.create_thread(thread("inv-1"))
    await memory.create_thread(thread("inv-2"))
    await memory.add_turn(turn("inv-1", "postgres vacuum settings", role=TurnRole.HUMAN,
                               author="U1"))
    for _ in range(PER_TERM + 5):  # more than a term's candidates, all in the current thread
        await memory.add_turn(turn("inv-2", "postgres vacuum again"))
    found = await memory.recall(*SLACK, "postgres vacuum", exclude_thread="inv-2")
    assert [r.thread_id for r in found] == ["inv-1"]
    assert found[0].author == "U1"  # people's turns are recalled too
    assert len(await memory.recall(*SLACK, "postgres vacuum", limit=3)) == 3


async def test_recall_text_is_a_short_excerpt_around_the_match(memory):
    await memory.create_thread(thread("inv-1"))
    long_text = "filler words here. " * 300 + "The root cause was a misconfigured ingress. " + \
        "more filler. " * 300
    await memory.add_turn(turn("inv-1", long_text))
    [found] = await memory.recall(*SLACK, "ingress root cause")
    assert len(found.text) <= 310
    assert "misconfigured ingress" in found.text


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        "the and of a",  # nothing but stopwords
        '"',
        '"unbalanced quote',
        "NEAR(kafka lag, 3)",
        "kafka AND NOT lag OR",
        "kafka* ^lag col:kafka",
        "kafka'; DROP TABLE turns; --",
        "({[<>]})!?.,;:-+*/\\|&%$#@~`",
        "💥🔥 kafka 🚀",
        "Kafká LÅG naïve 日本語 العربية",
        "\x00kafka\x00",
        "\ud800 lone surrogate kafka",
        "kafka " * 8000,  # 48,000 characters
        "x" * 40_000,
        "".join(chr(c) for c in range(0x20, 0x3000)),
    ],
)
async def test_recall_never_raises_on_weird_queries(memory, query):
    await memory.create_thread(thread("inv-1"))
    await memory.add_turn(turn("inv-1", "kafka consumer lag, naive approach, 日本語 notes"))
    found = await memory.recall(*SLACK, query)
    assert isinstance(found, list)
    assert await memory.get_thread("inv-1") is not None  # the SQL quote did nothing


async def test_recall_of_empty_queries_and_empty_channels(memory):
    assert await memory.recall(*SLACK, "anything at all") == []  # unknown channel
    await memory.create_thread(thread("inv-1"))
    assert await memory.recall(*SLACK, "anything at all") == []  # no turns yet
    await memory.add_turn(turn("inv-1", "kafka"))
    assert await memory.recall(*SLACK, "") == []
    assert await memory.recall(*SLACK, "?!") == []
    assert await memory.recall(*SLACK, "kafka", limit=0) == []


def test_fts_terms_are_safe_words():
    assert fts_terms('Why is "checkout" slow? NEAR(a b) AND*') == ["checkout", "slow"]
    assert fts_terms("Kafka kafka KAFKA") == ["kafka"]
    assert fts_terms("") == []
    terms = fts_terms(" ".join(f"word{i}" for i in range(100)) + " extraordinarily")
    assert len(terms) <= 8 and "extraordinarily" in terms
    for term in fts_terms('a"b c*d e:f (g) h^i 💥 日本語'):
        assert term.isalnum()


# -- export and forget ---------------------------------------------------------------------------


async def _fill(memory, place, name: str) -> int:
    platform, workspace, channel = place
    acc = await memory.accept_task(task(f"ev-{name}", platform, workspace, channel))
    await memory.create_thread(thread(f"inv-{name}", place=place, ts=f"{name}.1"))
    await memory.add_turn(turn(f"inv-{name}", f"elasticsearch shard imbalance in {name}",
                               task_id=acc.task_id, findings={"hypothesis": "shards"},
                               route={"critic": 0.8}, mode="researcher"))
    await memory.add_turn(turn(f"inv-{name}", "what about replicas?", role=TurnRole.HUMAN,
                               author="U1"))
    await memory.record_post(f"{acc.task_id}:0", task_id=acc.task_id, platform=platform,
                             workspace=workspace, channel=channel, thread=f"{name}.1",
                             message_id=f"{name}.2", persona="sophia", thread_id=f"inv-{name}")
    return acc.task_id


async def test_export_is_json_and_complete(memory):
    task_id = await _fill(memory, SLACK, "a")
    await _fill(memory, ("slack", "T1", "C2"), "b")
    export = await memory.export_channel(*SLACK)
    again = json.loads(json.dumps(export))
    assert again == export
    [inv] = export["threads"]
    assert inv["id"] == "inv-a" and inv["title"] == "question of inv-a"
    assert [t["seq"] for t in inv["turns"]] == [1, 2]
    assert inv["turns"][0]["findings"] == {"hypothesis": "shards"}
    assert inv["turns"][0]["route"] == {"critic": 0.8}
    assert inv["turns"][1]["role"] == "human"
    assert [p["message_id"] for p in export["posts"]] == ["a.2"]
    assert [t["id"] for t in export["tasks"]] == [task_id]
    assert "inv-b" not in json.dumps(export)


async def test_forget_removes_the_channel_and_nothing_else(memory):
    places = {"a": SLACK, "b": ("slack", "T1", "C2"), "c": ("slack", "T2", "C1")}
    tasks = {name: await _fill(memory, place, name) for name, place in places.items()}

    result = await memory.forget_channel(*SLACK)
    assert (result.threads, result.turns, result.tasks) == (1, 2, 1)

    assert await memory.recall(*SLACK, "elasticsearch shard imbalance") == []
    assert await memory.get_thread("inv-a") is None
    assert await memory.find_thread(*SLACK, "a.1") is None
    assert await memory.turns("inv-a") == []
    assert await memory.get_task(tasks["a"]) is None
    assert await memory.post_for_key(f"{tasks['a']}:0") is None
    assert await memory.persona_for_message(*SLACK, "a.2") is None
    assert await memory.count_turns(*SLACK) == 0
    assert await memory.list_threads(*SLACK) == []
    export = await memory.export_channel(*SLACK)
    assert export["threads"] == export["posts"] == export["tasks"] == []

    for name in ("b", "c"):  # the others are untouched
        place = places[name]
        assert [r.thread_id for r in await memory.recall(*place, "elasticsearch shard")] == [
            f"inv-{name}"
        ]
        assert await memory.count_turns(*place) == 2
        assert await memory.get_task(tasks[name]) is not None
        assert await memory.persona_for_message(*place, f"{name}.2") == "sophia"

    # the channel can start again, and the full-text index holds only the survivors
    await _fill(memory, SLACK, "a")
    assert [r.thread_id for r in await memory.recall(*SLACK, "elasticsearch")] == ["inv-a"]
    assert await indexed_turns(memory, "elasticsearch") == 3


async def test_forget_leaves_a_sound_fts_index(tmp_path):
    """SQLite only: the FTS5 table (PostgreSQL's index is a column of turns: nothing to drift)."""
    memory = await SQLiteMemory.open(tmp_path / "memory.db")
    for name, place in {"a": SLACK, "b": ("slack", "T1", "C2")}.items():
        await _fill(memory, place, name)
    await memory.forget_channel(*SLACK)
    await memory.close()
    con = sqlite3.connect(tmp_path / "memory.db")
    hits = con.execute(
        "SELECT count(*) FROM turns_fts WHERE turns_fts MATCH 'elasticsearch'").fetchone()[0]
    assert hits == 1
    assert con.execute("INSERT INTO turns_fts (turns_fts) VALUES ('integrity-check')") is not None
    con.close()


# -- one bad event harms no other -----------------------------------------------------------------


async def test_a_task_the_encoder_refuses_is_refused_alone_and_its_batch_is_stored(memory):
    from engine.models import TaskRefused

    tasks = [task(f"ev{i}", text=f"question {i}") for i in range(30)]
    tasks[7] = task("ev7", text="lone surrogate \ud800 here")
    results = await asyncio.gather(*(memory.accept_task(t) for t in tasks), return_exceptions=True)
    assert isinstance(results[7], TaskRefused)
    good = [r for i, r in enumerate(results) if i != 7]
    assert all(not isinstance(r, BaseException) and not r.duplicate for r in good)
    stored = await memory.unfinished_tasks()  # and every stored row reads back
    assert sorted(s.task.event_id for s in stored) == sorted(f"ev{i}" for i in range(30) if i != 7)


async def test_a_field_of_the_wrong_type_is_refused_alone(memory):
    from engine.models import TaskRefused

    bad = Task.model_construct(**{**task("evX").model_dump(), "channel": {"not": "text"}})
    results = await asyncio.gather(memory.accept_task(task("ev1")), memory.accept_task(bad),
                                   memory.accept_task(task("ev2")), return_exceptions=True)
    assert isinstance(results[1], TaskRefused)
    # calls made at once have no order (on PostgreSQL each is its own statement): compare sets
    assert sorted(s.task.event_id for s in await memory.unfinished_tasks()) == ["ev1", "ev2"]


async def test_a_row_the_database_rejects_is_refused_alone_and_the_others_commit(memory):
    from engine.models import TaskRefused

    if on_sqlite(memory):
        await memory._db.execute(
            "CREATE TEMP TRIGGER poison BEFORE INSERT ON tasks WHEN NEW.event_id = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    else:
        await memory._pool.execute(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no'; END $$; "
            "CREATE TRIGGER poison BEFORE INSERT ON tasks FOR EACH ROW "
            "WHEN (NEW.event_id = 'poison') EXECUTE FUNCTION poison()"
        )
    names = ["a", "b", "poison", "c", "d"]
    results = await asyncio.gather(*(memory.accept_task(task(n)) for n in names), return_exceptions=True)
    assert isinstance(results[2], TaskRefused)
    assert sorted(s.task.event_id for s in await memory.unfinished_tasks()) == ["a", "b", "c", "d"]


async def test_a_locked_database_is_a_transient_error_not_a_refusal(sqlite_memory, tmp_path):
    from engine.models import TaskRefused

    memory = sqlite_memory  # SQLite's own lock
    await memory._db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(tmp_path / "memory.db", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError) as caught:
            await memory.accept_task(task("locked"))
        assert not isinstance(caught.value, TaskRefused)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not (await memory.accept_task(task("locked"))).duplicate  # stored once it is free


# -- readable thread ids ---------------------------------------------------------------------------


async def test_thread_ids_count_per_stem_and_stay_with_their_task(memory):
    assert await memory.thread_id_for_task(1, "payments-") == "payments-1"
    assert await memory.thread_id_for_task(2, "payments-") == "payments-2"
    assert await memory.thread_id_for_task(3, "payments-c") == "payments-c1"
    assert await memory.thread_id_for_task(4, "ops-") == "ops-1"
    assert await memory.thread_id_for_task(1, "payments-") == "payments-1"  # resumed: the same id
    ids = await asyncio.gather(*(memory.thread_id_for_task(10 + i, "load-") for i in range(20)))
    assert sorted(ids, key=lambda s: int(s.split("-")[1])) == [f"load-{i}" for i in range(1, 21)]


async def test_thread_ids_never_come_back_after_forget(memory):
    accepted = await memory.accept_task(task("e1", channel="payments"))
    first = await memory.thread_id_for_task(accepted.task_id, "payments-")
    await memory.create_thread(thread(first, place=("slack", "T1", "payments")))
    await memory.forget_channel("slack", "T1", "payments")
    again = await memory.accept_task(task("e2", channel="payments"))
    if on_sqlite(memory):  # SQLite reuses the forgotten task's id (PostgreSQL never does)...
        assert again.task_id == accepted.task_id
    assert await memory.thread_id_for_task(again.task_id, "payments-") == "payments-2"  # ...never its thread id


async def test_a_taken_id_is_skipped(memory):
    await memory.create_thread(thread("general-1", place=("local", "local", "general")))
    assert await memory.thread_id_for_task(7, "general-") == "general-2"


async def test_a_version_1_memory_is_migrated_and_keeps_its_ids(tmp_path):
    """SQLite only: PostgreSQL memories start at their own version 1 (engine.memory.pg.schema)."""
    from engine.memory.schema import SCHEMA_V1

    path = tmp_path / "v1.db"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA_V1 + "PRAGMA user_version = 1;")
    con.execute("INSERT INTO channels (platform, workspace, channel) VALUES ('local', 'local', 'inv')")
    for id_ in ("inv-8", "conv-9"):
        con.execute(
            "INSERT INTO threads (id, chan, kind, platform, workspace, channel, thread, title, inv_type, phase, "
            "status, lead, turn_count, created_at, updated_at) VALUES (?, 1, 'investigation', 'local', 'local', "
            "'inv', 't', 'old', 'general', 'discovery', 'active', 'cherry', 0, '2024-01-01T00:00:00.000000+00:00', "
            "'2024-01-01T00:00:00.000000+00:00')", (id_,))
    con.execute("INSERT INTO tasks (id, platform, workspace, channel, event_id, status, body, created_at, updated_at) "
                "VALUES (12, 'local', 'local', 'inv', 'e12', 'done', '{}', 'x', 'x')")
    con.commit()
    con.close()
    mem = await SQLiteMemory.open(path)
    try:
        assert await mem.thread_id_for_task(8, "x-") == "inv-8"  # a task resumed after the upgrade
        assert await mem.thread_id_for_task(9, "x-c") == "conv-9"
        assert (await mem.get_thread("inv-8")).title == "old"
        # version 1 gave inv-N / conv-N for task N: those numbers are never given again
        assert await mem.thread_id_for_task(100, "inv-") == "inv-13"
        assert await mem.thread_id_for_task(101, "conv-c") == "conv-c1"
        assert await mem.thread_id_for_task(102, "conv-") == "conv-13"
    finally:
        await mem.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.close()
