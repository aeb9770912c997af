"""What only the operator API asks the memory (task listings, what a task produced, investigations
in pages), straight on the memory, on both backends (`memory_db`: a SQLite file, a PostgreSQL
database): one suite, so the two answer alike. The API's own tests (tests/test_api_*.py) go
through HTTP on a bootstrapped bot."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from engine.memory.open import open_memory
from engine.memory.records import TaskStatus, ThreadKind, ThreadRecord, ThreadStatus, TurnRecord, TurnRole
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
