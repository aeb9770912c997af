"""The engine's scheduled jobs (engine.jobs), each run with an explicit `now`: never by sleeping.

A real memory on both backends (`memory_db`: a SQLite file, a PostgreSQL database), the real
engine with scripted models, FakeOutbox for the platform.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.engine import Engine, EngineConfig
from engine.jobs import (
    digest_key,
    expire_caches,
    nudge_waiting,
    prune_memory,
    send_digests,
)
from engine.memory.open import open_memory
from engine.memory.records import ThreadStatus, TurnRecord, TurnRole
from engine.models import ReplyKind, Task, TaskKind, utcnow
from engine.personas import PersonaRegistry
from engine.memory.url import is_postgres_url
from tests.fakes import Crash, FakeOutbox, ScriptedProvider, by_mode, research
from tests.memory_backends import memory_db, pg_server  # noqa: F401 - fixtures
from tests.memory_sql import execute, scalar

_ids = itertools.count(1)
HOUR = timedelta(hours=1)
AFTER = timedelta(hours=4)


def task(text="", *, kind=TaskKind.MESSAGE, channel="C1", thread=None, workspace="W1", **kw) -> Task:
    n = next(_ids)
    if kind == TaskKind.MESSAGE and thread is None:
        thread = f"ts{n}"
    return Task(platform="test", workspace=workspace, channel=channel, thread=thread, user="U1", text=text,
                event_id=f"e{n}", kind=kind, message_id=f"ts{n}", **kw)


def asking(question: str = "Which region saw the drop first?") -> dict:
    """A research turn that stops to ask the people in the thread."""
    return research("low", gaps=[(question, True)])


@pytest.fixture
def db(memory_db) -> Path | str:
    """Where the memory lives: a SQLite file or a PostgreSQL URL (each test runs on both)."""
    return memory_db


async def make(db: Path | str, *answers, outbox: FakeOutbox | None = None, **config) -> tuple[Engine, FakeOutbox]:
    memory = await open_memory(db)
    engine = Engine(memory, ScriptedProvider(*answers, fallback=by_mode), PersonaRegistry.defaults(), EngineConfig(**config))
    outbox = outbox or FakeOutbox()
    engine.register_outbox("test", outbox)
    await engine.start()
    return engine, outbox


async def shut(engine: Engine) -> None:
    await engine.stop()
    await engine.memory.close()


@pytest.fixture
async def waiting(db):
    """An investigation led by Sophia that stopped to ask the people in its thread."""
    engine, outbox = await make(db, asking())
    rec = await engine.run(task("sophia why did sign-ups drop last week?", kind=TaskKind.INVESTIGATE))
    assert rec.status == ThreadStatus.WAITING
    yield engine, outbox, rec
    await shut(engine)


def nudges(outbox: FakeOutbox) -> list:
    return [r for r in outbox.posts if r.key.startswith("nudge:")]


# --- nudges ---------------------------------------------------------------------------------------


async def test_a_waiting_investigation_is_nudged_once_after_the_threshold_not_before(waiting) -> None:
    engine, outbox, rec = waiting
    assert await nudge_waiting(engine, rec.updated_at + AFTER - HOUR, AFTER) == 0
    assert nudges(outbox) == []

    assert await nudge_waiting(engine, rec.updated_at + AFTER + HOUR, AFTER) == 1
    [nudge] = nudges(outbox)
    assert nudge.thread == rec.thread and nudge.channel == rec.channel and nudge.kind == ReplyKind.NOTICE
    assert nudge.voice.name == rec.lead == "sophia"
    assert "Which region saw the drop first?" in nudge.text and "5 hours" in nudge.text

    assert await nudge_waiting(engine, rec.updated_at + 3 * AFTER, AFTER) == 0  # once per wait
    assert len(nudges(outbox)) == 1


async def test_a_restart_on_the_same_file_does_not_nudge_again(db) -> None:
    engine, outbox = await make(db, asking())
    rec = await engine.run(task("sophia why did sign-ups drop?", kind=TaskKind.INVESTIGATE))
    later = rec.updated_at + 2 * AFTER
    assert await nudge_waiting(engine, later, AFTER) == 1
    await shut(engine)

    engine, again = await make(db, outbox=FakeOutbox(shown=outbox.shown))  # a new process, same platform
    try:
        assert await nudge_waiting(engine, later + HOUR, AFTER) == 0
        assert again.posts == []
    finally:
        await shut(engine)


async def test_a_nudge_interrupted_after_the_platform_took_it_is_not_posted_twice(db) -> None:
    engine, outbox = await make(db, asking())
    rec = await engine.run(task("sophia why did sign-ups drop?", kind=TaskKind.INVESTIGATE))
    outbox.crash_after = lambda reply: reply.key.startswith("nudge:")
    with pytest.raises(Crash):
        await nudge_waiting(engine, rec.updated_at + 2 * AFTER, AFTER)
    await shut(engine)

    engine, again = await make(db, outbox=FakeOutbox(shown=outbox.shown))
    try:
        await nudge_waiting(engine, rec.updated_at + 3 * AFTER, AFTER)
        assert nudges(again) == []  # found on the platform by its key
    finally:
        await shut(engine)


async def test_no_nudge_once_a_person_has_answered_even_before_the_answer_is_worked_on(waiting) -> None:
    engine, outbox, rec = waiting
    # the reply is accepted (stored) but not worked on yet: the bot was busy, or stopped
    await engine.memory.accept_task(task("it started in the EU", thread=rec.thread))
    assert await nudge_waiting(engine, rec.updated_at + 2 * AFTER, AFTER) == 0
    assert nudges(outbox) == []


async def test_no_nudge_while_a_reply_queued_before_the_wait_is_still_to_be_worked_on(waiting, db) -> None:
    engine, _outbox, rec = waiting
    accepted = await engine.memory.accept_task(task("EU, since Monday", thread=rec.thread))
    # it arrived while the last turn was still running
    await execute(db, ("UPDATE tasks SET created_at = ? WHERE id = ?", (OLD, accepted.task_id)))
    assert await nudge_waiting(engine, rec.updated_at + 2 * AFTER, AFTER) == 0


async def test_no_nudge_after_a_stored_reply(waiting) -> None:
    engine, _outbox, rec = waiting
    await engine.memory.add_turn(TurnRecord(thread_id=rec.id, role=TurnRole.HUMAN, author="U2", text="EU first"))
    assert await nudge_waiting(engine, rec.updated_at + 2 * AFTER, AFTER) == 0


async def test_no_nudge_to_a_closed_investigation(waiting) -> None:
    engine, outbox, rec = waiting
    await engine.run(task(kind=TaskKind.CLOSE, thread=rec.thread))
    closed = await engine.memory.get_thread(rec.id)
    assert closed.status == ThreadStatus.CLOSED
    assert await nudge_waiting(engine, closed.updated_at + 2 * AFTER, AFTER) == 0
    assert nudges(outbox) == []


async def test_a_new_wait_after_an_answer_is_nudged_again(db) -> None:
    engine, outbox = await make(db, asking(), asking("Did the pricing page change that week?"))
    try:
        rec = await engine.run(task("sophia why did sign-ups drop?", kind=TaskKind.INVESTIGATE))
        assert await nudge_waiting(engine, rec.updated_at + 2 * AFTER, AFTER) == 1
        rec = await engine.run(task("EU first, on Monday", thread=rec.thread))
        assert rec.status == ThreadStatus.WAITING and rec.turn_count == 2
        assert await nudge_waiting(engine, rec.updated_at + 2 * AFTER, AFTER) == 1
        first, second = nudges(outbox)
        assert first.key != second.key and "pricing page" in second.text
    finally:
        await shut(engine)


async def test_a_paused_investigation_is_nudged_with_the_reason(db) -> None:
    engine, outbox = await make(db, max_auto_turns=1)
    try:
        rec = await engine.run(task("sophia why did sign-ups drop?", kind=TaskKind.INVESTIGATE))
        assert rec.status == ThreadStatus.PAUSED
        assert await nudge_waiting(engine, rec.updated_at + 2 * AFTER, AFTER) == 1
        [nudge] = nudges(outbox)
        assert "paused" in nudge.text and "1 turn in a row" in nudge.text and nudge.voice.name == "sophia"
    finally:
        await shut(engine)


async def test_threads_of_a_platform_not_running_wait_for_it(db) -> None:
    engine, _outbox = await make(db, asking())
    rec = await engine.run(task("sophia why did sign-ups drop?", kind=TaskKind.INVESTIGATE))
    await shut(engine)
    memory = await open_memory(db)
    engine = Engine(memory, ScriptedProvider(), PersonaRegistry.defaults(), EngineConfig())  # no outbox
    try:
        assert await nudge_waiting(engine, rec.updated_at + 2 * AFTER, AFTER) == 0
    finally:
        await shut(engine)


# --- digests --------------------------------------------------------------------------------------


async def test_a_digest_lists_its_own_channels_open_investigations_once_a_day(db) -> None:
    engine, outbox = await make(db, asking(), asking(), asking(), asking())
    try:
        waiting = await engine.run(task("sophia why did sign-ups drop?", kind=TaskKind.INVESTIGATE))
        closed = await engine.run(task("karen is the campaign on track?", kind=TaskKind.INVESTIGATE))
        await engine.run(task(kind=TaskKind.CLOSE, thread=closed.thread))
        elsewhere = await engine.run(task("why is checkout slow?", kind=TaskKind.INVESTIGATE, channel="C2"))
        other_ws = await engine.run(task("why is checkout slow?", kind=TaskKind.INVESTIGATE, workspace="W2"))
        posted = len(outbox.posts)
        now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)

        assert await send_digests(engine, now, [("test", "W1", "C1")]) == 1
        [digest] = outbox.posts[posted:]
        assert digest.kind == ReplyKind.NOTICE and digest.thread is None and digest.channel == "C1"
        assert digest.key == digest_key("test", "C1", now.date()) == "digest:test:C1:2026-11-24"
        assert [(i["id"], i["thread"], i["status"]) for i in digest.content["digest"]] == [
            (waiting.id, waiting.thread, "waiting")
        ]
        assert waiting.id in digest.text and closed.id not in digest.text
        assert elsewhere.id not in digest.text and other_ws.id not in digest.text

        assert await send_digests(engine, now + HOUR, [("test", "W1", "C1")]) == 0  # once a day
        assert await send_digests(engine, now + 24 * HOUR, [("test", "W1", "C1")]) == 1  # the next day
        assert await send_digests(engine, now, [("test", "W1", "C9"), ("slack", None, "C1")]) == 0  # nothing open; not running
        assert await send_digests(engine, now, [("test", "W1", "C2")]) == 1
        assert [i["id"] for i in outbox.posts[-1].content["digest"]] == [elsewhere.id]
    finally:
        await shut(engine)


async def test_the_digest_day_is_the_local_date(db) -> None:
    from zoneinfo import ZoneInfo

    engine, outbox = await make(db, asking())
    try:
        await engine.run(task("sophia why did sign-ups drop?", kind=TaskKind.INVESTIGATE))
        late = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)  # already the 25th in Paris
        assert await send_digests(engine, late, [("test", None, "C1")], tz=ZoneInfo("Europe/Paris")) == 1
        assert outbox.posts[-1].key == "digest:test:C1:2026-11-25"
    finally:
        await shut(engine)


# --- retention ------------------------------------------------------------------------------------

OLD = "2020-01-01T00:00:00.000000+00:00"


async def backdate(db: Path | str) -> None:
    """Everything stored so far happened long ago (a second connection, as a clock cannot)."""
    await execute(
        db,
        ("UPDATE threads SET created_at = ?, updated_at = ?", (OLD, OLD)),
        ("UPDATE turns SET created_at = ?", (OLD,)),
        ("UPDATE tasks SET created_at = ?, updated_at = ?", (OLD, OLD)),
        *((f"UPDATE {table} SET created_at = ?", (OLD,)) for table in ("posts", "intents", "placeholders")),
    )


async def count(db: Path | str, sql: str, *params) -> int:
    return await scalar(db, sql, *params)


async def test_retention_removes_old_finished_work_keeps_open_investigations_and_recall_agrees(db) -> None:
    engine, outbox = await make(db, asking(), research("low", summary="zebra stripes puzzle"))
    old_open = await engine.run(task("sophia why did quokka sign-ups drop?", kind=TaskKind.INVESTIGATE))
    old_closed = await engine.run(task("karen why did walrus renewals stall?", kind=TaskKind.INVESTIGATE))
    await engine.run(task(kind=TaskKind.CLOSE, thread=old_closed.thread))
    await engine.run(task("sophia, what about narwhal pricing?"))  # a conversation
    await shut(engine)
    await backdate(db)
    before = {t: await count(db, f"SELECT count(*) FROM {t}") for t in ("threads", "turns", "tasks", "posts")}

    engine, outbox = await make(db, research("high"), outbox=FakeOutbox(shown=outbox.shown))
    try:
        recent = await engine.run(task("karen why did walrus churn rise?", kind=TaskKind.INVESTIGATE))
        await engine.run(task(kind=TaskKind.CLOSE, thread=recent.thread))
        memory = engine.memory
        open_turns = len(await memory.turns(old_open.id))

        assert await engine.is_known_thread("test", "W1", "C1", old_closed.thread)  # cached now
        removed = await prune_memory(memory, utcnow(), keep_days=90)
        assert removed > 0
        assert "forgotten" in expire_caches(engine)
        assert not await engine.is_known_thread("test", "W1", "C1", old_closed.thread)
        assert await memory.get_thread(old_closed.id) is None
        assert await memory.turns(old_closed.id) == []
        assert (await memory.get_thread(old_open.id)).status == ThreadStatus.WAITING  # open: kept whole
        assert len(await memory.turns(old_open.id)) == open_turns
        assert await memory.get_thread(recent.id) is not None  # finished, but recently
        assert await count(db, "SELECT count(*) FROM threads") == 2
        assert await count(db, "SELECT count(*) FROM posts WHERE thread_id = ?", old_closed.id) == 0
        assert await count(db, "SELECT count(*) FROM posts WHERE thread_id = ?", old_open.id) > 0
        assert await count(db, "SELECT count(*) FROM tasks") < before["tasks"] + 2
        # the open investigation's tasks stay: its opening task still knows its thread id
        assert await count(db, "SELECT count(*) FROM thread_ids WHERE thread_id = ?", old_open.id) == 1

        # recall finds what remains and nothing deleted; the index matches the table exactly
        found = await memory.recall("test", "W1", "C1", "quokka walrus narwhal")
        assert {r.thread_id for r in found} <= {old_open.id, recent.id}
        assert any(r.thread_id == old_open.id for r in found)
        assert await memory.recall("test", "W1", "C1", "narwhal") == []
        if not is_postgres_url(db):  # SQLite's FTS index is a table of its own (PostgreSQL's, a column)
            await execute(db, "INSERT INTO turns_fts (turns_fts) VALUES ('integrity-check')")
            indexed = await count(db, "SELECT count(*) FROM turns_fts WHERE turns_fts MATCH 'walrus'")
            assert indexed == await count(db, "SELECT count(*) FROM turns WHERE text LIKE '%walrus%'")

        # what a crash left behind long ago goes too; a task that will resume keeps its own
        await memory.record_intent("turn:gone:1", task_id=None, platform="test", workspace="W1", channel="C1", thread="x")
        await backdate(db)
        assert await prune_memory(memory, utcnow(), keep_days=90) >= 1
        assert not await memory.has_intent("turn:gone:1")
        assert await memory.get_thread(old_open.id) is not None

        # nothing is pruned twice, and new work gets new ids, never a pruned one's
        assert await prune_memory(memory, utcnow(), keep_days=90) == 0
        newer = await engine.run(task("karen why did walrus churn rise again?", kind=TaskKind.INVESTIGATE))
        assert newer.id not in (old_closed.id, old_open.id, recent.id)
    finally:
        await shut(engine)


async def test_an_old_conversation_with_a_reply_waiting_to_be_worked_on_is_kept(db) -> None:
    engine, _ = await make(db, "Narwhals are pricey.")
    chat = await engine.run(task("sophia, what about narwhal pricing?"))
    await shut(engine)
    await backdate(db)
    memory = await open_memory(db)  # the bot is down: the reply waits in the memory
    try:
        reply = await memory.accept_task(task("and narwhal costs?", thread=chat.thread))
        assert await prune_memory(memory, utcnow(), keep_days=90) == 0
        assert await memory.get_thread(chat.id) is not None
        await memory.set_task_status(reply.task_id, "failed")  # worked on (and given up)
        assert await prune_memory(memory, utcnow() + timedelta(days=365), keep_days=90) > 0
        assert await memory.get_thread(chat.id) is None
    finally:
        await memory.close()


async def test_retention_zero_keeps_everything(db) -> None:
    engine, _outbox = await make(db, asking())
    try:
        rec = await engine.run(task("karen why did renewals stall?", kind=TaskKind.INVESTIGATE))
        await engine.run(task(kind=TaskKind.CLOSE, thread=rec.thread))
        assert await prune_memory(engine.memory, utcnow() + timedelta(days=10_000), keep_days=0) == 0
        assert await engine.memory.get_thread(rec.id) is not None
    finally:
        await shut(engine)


