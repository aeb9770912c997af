"""What the operator API and the scheduled jobs ask the memory (task listings, what a task
produced, investigations in pages; waiting and open investigations, retention), straight on the
memory, on both backends (`memory_db`: a SQLite file, a PostgreSQL database): one suite, so the two
answer alike. The API's own tests (tests/test_api_*.py) go through HTTP on a bootstrapped bot; the
jobs' through the engine (tests/test_jobs.py)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from engine.memory.open import open_memory
from engine.memory.records import (
    TaskStatus,
    ThreadKind,
    ThreadRecord,
    ThreadStatus,
    TurnRecord,
    TurnRole,
)
from engine.models import Task, TaskKind
from tests.memory_backends import memory_db, pg_server  # noqa: F401 - fixtures

_ids = itertools.count(1)
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def task(channel: str = "C1", *, platform: str = "api", persona: str | None = None, thread: str | None = None) -> Task:
    n = next(_ids)
    return Task(platform=platform, workspace="W1", channel=channel, user="U1", text=f"question {n}",
                event_id=f"ev{n}", persona=persona, thread=thread, kind=TaskKind.MESSAGE, message_id=f"m{n}")


def thread(id_: str, *, channel: str = "C1", platform: str = "api", status: ThreadStatus = ThreadStatus.ACTIVE,
           kind: ThreadKind = ThreadKind.INVESTIGATION, at: datetime = T0) -> ThreadRecord:
    return ThreadRecord(id=id_, kind=kind, platform=platform, workspace="W1", channel=channel, thread=f"ts-{id_}",
                        title=f"about {id_}", status=status, created_at=at, updated_at=at)


async def test_ping_and_a_platforms_tasks_by_filter_newest_first_in_pages(memory_db) -> None:
    memory = await open_memory(memory_db)
    try:
        await memory.ping()
        plain = (await memory.accept_task(task("C1"))).task_id
        named = (await memory.accept_task(task("C2", persona="Sophia"))).task_id
        answered = (await memory.accept_task(task("C1"))).task_id
        elsewhere = (await memory.accept_task(task("C1", platform="slack"))).task_id
        await memory.set_task_status(plain, TaskStatus.DONE)
        await memory.set_task_status(named, TaskStatus.FAILED, "the model was away")
        rec = await memory.create_thread(thread(await memory.thread_id_for_task(answered, "c1-c"),
                                                kind=ThreadKind.CONVERSATION))
        await memory.add_turn(TurnRecord(thread_id=rec.id, task_id=answered, role=TurnRole.PERSONA, author="karen",
                                         text="It is the cache."))

        def ids(rows):
            return [r.stored.id for r in rows]

        assert ids(await memory.api_tasks("api")) == [answered, named, plain]
        assert ids(await memory.api_tasks("api", status="done")) == [plain]
        assert ids(await memory.api_tasks("api", channel="C1")) == [answered, plain]
        assert ids(await memory.api_tasks("api", persona="sophia")) == [named]  # named in the task
        assert ids(await memory.api_tasks("api", persona="KAREN")) == [answered]  # or answered as her
        assert ids(await memory.api_tasks("api", before_id=answered, limit=1)) == [named]
        assert ids(await memory.api_tasks("api", before_id=named)) == [plain]
        assert ids(await memory.api_tasks("api", since=datetime.now(UTC) + timedelta(days=1))) == []
        assert ids(await memory.api_tasks("api", since=datetime.now(UTC) - timedelta(days=1), limit=2)) == [answered, named]
        assert ids(await memory.api_tasks("slack")) == [elsewhere]

        row = await memory.api_task("api", named)
        assert (row.stored.status, row.stored.error, row.stored.task.persona) == ("failed", "the model was away", "Sophia")
        assert row.created_at <= row.updated_at and row.created_at.tzinfo is not None
        assert await memory.api_task("slack", named) is None  # another platform's namespace
        assert await memory.api_task("api", 10_000) is None
        event = (await memory.get_task(plain)).task.event_id
        assert (await memory.api_task_by_event("api", "W1", event)).stored.id == plain
        assert await memory.api_task_by_event("api", "W2", event) is None
        assert await memory.api_task_by_event("slack", "W1", event) is None
    finally:
        await memory.close()


async def test_what_a_task_produced_its_persona_turns_and_its_thread(memory_db) -> None:
    memory = await open_memory(memory_db)
    try:
        opening = (await memory.accept_task(task())).task_id
        reply = (await memory.accept_task(task(thread="ts-x"))).task_id
        idle = (await memory.accept_task(task())).task_id
        rec = await memory.create_thread(thread(await memory.thread_id_for_task(opening, "c1-")))
        for step, (role, author, text) in enumerate([
            (TurnRole.PERSONA, "sophia", "First look."), (TurnRole.HUMAN, "U1", "More?"),
            (TurnRole.PERSONA, "karen", "Second look."),
        ]):
            await memory.add_turn(TurnRecord(thread_id=rec.id, task_id=opening, step=step, role=role, author=author,
                                             text=text, route={"why": "scores"}, findings={"k": 1}))
        await memory.add_turn(TurnRecord(thread_id=rec.id, task_id=reply, role=TurnRole.PERSONA, author="cherry",
                                         text="Third."))

        turns = await memory.task_turns(opening)
        assert [(t.author, t.text) for t in turns] == [("sophia", "First look."), ("karen", "Second look.")]
        assert turns[0].route == {"why": "scores"} and turns[0].findings == {"k": 1} and turns[0].structured
        assert (await memory.task_thread(opening)).id == rec.id  # through the id it was given
        assert (await memory.task_thread(reply)).id == rec.id  # through the turns it added
        assert await memory.task_thread(idle) is None
        assert await memory.task_turns(idle) == []
    finally:
        await memory.close()


async def test_investigations_across_channels_newest_first_in_keyset_pages(memory_db) -> None:
    memory = await open_memory(memory_db)
    try:
        made = [
            thread("a-1", at=T0), thread("a-2", at=T0 + timedelta(minutes=1), channel="C2"),
            thread("a-3", at=T0 + timedelta(minutes=1), status=ThreadStatus.CLOSED),  # same time as a-2
            thread("a-4", at=T0 + timedelta(minutes=2), platform="slack"),
            thread("c-1", at=T0 + timedelta(minutes=3), kind=ThreadKind.CONVERSATION),  # never listed
        ]
        for rec in made:
            await memory.create_thread(rec)

        everything = await memory.investigations_page()
        assert [r.id for r in everything] == ["a-4", "a-3", "a-2", "a-1"]
        assert everything[0].created_at == T0 + timedelta(minutes=2) and everything[0].platform == "slack"
        assert [r.id for r in await memory.investigations_page(platform="api")] == ["a-3", "a-2", "a-1"]
        assert [r.id for r in await memory.investigations_page(channel="C1", platform="api")] == ["a-3", "a-1"]
        assert [r.id for r in await memory.investigations_page(status="closed")] == ["a-3"]

        pages, after = [], None
        while True:
            page = await memory.investigations_page(after=after, limit=2)
            if not page:
                break
            pages.append([r.id for r in page])
            after = (page[-1].created_at, page[-1].id)
        assert pages == [["a-4", "a-3"], ["a-2", "a-1"]]
        assert [r.id for r in await memory.investigations_page(after=(T0 + timedelta(minutes=1), "a-3"))] == [
            "a-2", "a-1"]  # the same time, a smaller id: next
    finally:
        await memory.close()


# --- the scheduled jobs' queries and retention, on rows written behind the memory's back ---------
#
# A fixed set of rows (as a crash, an old version or a long time would leave them), the same on
# both backends: every query the jobs ask, and what retention removes, must come out the same.

OLD = "2020-01-01T00:00:00.000000+00:00"
NEW = "2026-11-23T09:00:00.000000+00:00"


def _body(thread: str | None, persona: str | None, n: int) -> str:
    return Task(platform="test", workspace="W1", channel="C1", thread=thread, user="U1", text="x", event_id=f"e{n}",
                persona=persona, received_at=datetime.fromisoformat(NEW)).model_dump_json()


_TASK = ("INSERT INTO tasks (id, platform, workspace, channel, event_id, status, body, created_at, updated_at) "
         "VALUES (?, 'test', 'W1', 'C1', ?, ?, ?, ?, ?)")
_THREAD = ("INSERT INTO threads (id, chan, kind, platform, workspace, channel, thread, title, inv_type, phase, "
           "status, lead, turn_count, created_at, updated_at) "
           "VALUES (?, ?, ?, 'test', ?, 'C1', ?, 't', 'general', 'discovery', ?, 'sophia', 1, ?, ?)")
_TURN = ("INSERT INTO turns (id, thread_id, seq, doc, ntok, task_id, step, role, author, text, structured, "
         "input_tokens, output_tokens, created_at) VALUES (?, ?, ?, ?, 2, ?, 0, ?, ?, 'some words', 1, 0, 0, ?)")
_POST = ("INSERT INTO posts (id, key, task_id, platform, workspace, channel, thread, message_id, persona, "
         "thread_id, created_at) VALUES (?, ?, NULL, 'test', 'W1', 'C1', ?, ?, 'sophia', ?, ?)")
_INTENT = ("INSERT INTO intents (key, task_id, platform, workspace, channel, thread, created_at) "
           "VALUES (?, ?, 'test', 'W1', 'C1', NULL, ?)")
_PLACEHOLDER = ("INSERT INTO placeholders (key, task_id, platform, workspace, channel, thread, persona, message_id, "
                "created_at) VALUES ('p1', 1, 'test', 'W1', 'C1', '', 'sophia', NULL, ?)")


def _rows() -> list[tuple[str, tuple]]:
    rows: list[tuple[str, tuple]] = [
        ("INSERT INTO channels (id, platform, workspace, channel) VALUES (?, 'test', ?, 'C1')", (1, "W1")),
        ("INSERT INTO channels (id, platform, workspace, channel) VALUES (?, 'test', ?, 'C1')", (2, "W2")),
    ]
    for id_, status, thread_, persona, at in [  # tasks
        (1, "done", "ts1", None, OLD), (2, "done", "ts2", "Sophia", OLD), (3, "accepted", "ts3", None, OLD),
        (4, "failed", None, None, OLD), (5, "done", None, None, NEW), (6, "running", "ts6", "karen", NEW),
        (7, "done", "tsX", None, OLD), (8, "done", "ts8", None, NEW),
    ]:
        rows.append((_TASK, (id_, f"e{id_}", status, _body(thread_, persona, id_), at, at)))
    for id_, kind, thread_, status, at, ws in [  # threads
        ("c1-1", "investigation", "ts1", "waiting", OLD, "W1"), ("c1-2", "investigation", "ts2", "closed", OLD, "W1"),
        ("c1-3", "investigation", "ts3", "paused", OLD, "W1"), ("c1-c1", "conversation", "ts6", "active", OLD, "W1"),
        ("c1-4", "investigation", "ts8", "active", NEW, "W1"), ("c1-5", "investigation", None, "waiting", OLD, "W1"),
        ("c1-6", "investigation", "ts9", "complete", OLD, "W2"), ("c1-7", "investigation", "ts10", "waiting", OLD, "W2"),
        ("c1-c2", "conversation", "ts11", "active", OLD, "W1"),
    ]:
        rows.append((_THREAD, (id_, 1 if ws == "W1" else 2, kind, ws, thread_, status, at, at)))
    for id_, thread_id, seq, task_id, role, author, at in [  # turns
        (1, "c1-1", 1, 1, "persona", "sophia", OLD), (2, "c1-2", 1, 2, "persona", "Karen", OLD),
        (3, "c1-2", 2, 2, "human", "U1", OLD), (4, "c1-2", 3, 2, "persona", "karen", OLD),
        (5, "c1-c1", 1, 6, "persona", "karen", NEW), (6, "c1-4", 1, 8, "persona", "cherry", NEW),
        (7, "c1-6", 1, None, "persona", "cherry", OLD), (8, "c1-c2", 1, None, "persona", "cherry", OLD),
        (9, "c1-3", 1, None, "human", "U2", "2021-01-01T00:00:00.000000+00:00"),  # answered after the pause
    ]:
        rows.append((_TURN, (id_, thread_id, seq, 10_000 + id_, task_id, role, author, at)))
    for task_id, thread_id, n in [(1, "c1-1", 1), (4, "c1-gone", 9), (2, "c1-2", 2)]:
        rows.append(("INSERT INTO thread_ids (task_id, thread_id, stem, n) VALUES (?, ?, 'c1-', ?)", (task_id, thread_id, n)))
    for id_, key, thread_id, thread_, at in [  # posts; 4 and 5: of no thread that stays, 6: recent
        (1, "k1", "c1-1", "ts1", OLD), (2, "paused:x", "c1-1", "ts1", OLD), (3, "k3", "c1-2", "ts2", OLD),
        (4, "orphan", None, "tsZ", OLD), (5, "orphan2", None, "ts8", OLD), (6, "new", None, "tsQ", NEW),
    ]:
        rows.append((_POST, (id_, key, thread_, f"m{id_}", thread_id, at)))
    rows += [(_INTENT, (key, task_id, OLD)) for key, task_id in [("i1", None), ("i2", 3)]]
    rows.append((_PLACEHOLDER, (OLD,)))
    return rows


async def test_the_jobs_queries_and_retention_on_rows_left_long_ago(memory_db) -> None:
    from engine.memory.maintenance import PruneResult
    from tests.memory_sql import execute

    memory = await open_memory(memory_db)
    try:
        await execute(memory_db, *_rows())

        async def waiting(since):
            return [t.id for t in await memory.waiting_investigations(since)]

        assert await waiting(datetime(2019, 1, 1, tzinfo=UTC)) == []
        assert await waiting(datetime(2022, 1, 1, tzinfo=UTC)) == ["c1-1", "c1-7"]  # c1-3 answered, c1-5 no thread
        assert [await memory.answered_since_wait(t) for t in ("c1-1", "c1-3", "c1-5", "nope")] == [False, True, False, False]
        assert await memory.latest_post_key("c1-1") == "paused:x" and await memory.latest_post_key("c1-3") is None

        async def open_(workspace):
            return [t.id for t in await memory.open_investigations("test", workspace, "C1")]

        assert await open_("W1") == ["c1-1", "c1-3", "c1-5", "c1-4"]
        assert await open_("W2") == ["c1-7"] and await open_("W3") == []
        assert await open_(None) == ["c1-1", "c1-3", "c1-5", "c1-7", "c1-4"]

        assert [r.stored.id for r in await memory.api_tasks("test", persona="KAREN")] == [6, 2]
        assert [t.id for t in await memory.investigations_page(status="waiting")] == ["c1-7", "c1-5", "c1-1"]

        removed = await memory.prune(datetime(2025, 1, 1, tzinfo=UTC))
        # threads c1-2 (closed), c1-6 (complete), c1-c2 (a conversation); c1-c1 has a task running
        assert removed == PruneResult(threads=3, turns=5, tasks=3, posts=2, pending=2)
        assert [t.id for t in await memory.investigations_page()] == ["c1-4", "c1-7", "c1-5", "c1-3", "c1-1"]
        assert [r.stored.id for r in await memory.api_tasks("test")] == [8, 6, 5, 3, 1]
        assert await memory.has_intent("i2") and not await memory.has_intent("i1")
        assert await memory.placeholders() == []
        assert await memory.prune(datetime(2025, 1, 1, tzinfo=UTC)) == PruneResult()  # nothing twice
    finally:
        await memory.close()
