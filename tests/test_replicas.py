"""Several replicas on one PostgreSQL: lanes in order and one at a time across replicas, a dead
replica's tasks and lanes taken over once its lease is past, and a stopping replica's at once.

Each "replica" here is an `engine.replicas.SharedReplica` over a pool of its own (two pools: two
processes, as far as the database can tell), against the real server of `tests.pg_server`. A
replica is made dead by ageing its heartbeat in the database, not by waiting for it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from engine.memory.pg.coordination import PgCoordination
from engine.memory.records import StoredTask, TaskStatus
from engine.models import Task
from engine.replicas import LocalReplica, replica_for
from engine.shared_replica import SharedReplica
from tests.pg_server import pg_server, pg_url  # noqa: F401 - fixtures


@pytest.fixture
def coord_url(pg_url):  # noqa: F811
    return pg_url


class Replicas:
    """Opens replicas (each with its own pool) on one database; closes them all."""

    def __init__(self, url: str):
        self.url = url
        self.pools: list[PgCoordination] = []
        self.replicas: list[SharedReplica] = []

    async def open(self, *, lease: float = 30.0, poll: float = 0.05) -> SharedReplica:
        store = await PgCoordination.open(self.url, min_size=1, max_size=8)
        self.pools.append(store)
        replica = SharedReplica(store, lease=lease, poll=poll)
        self.replicas.append(replica)
        await replica.start()
        return replica

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.stop()
        for store in self.pools:
            await store.close()

    async def accept(self, *, thread: str | None = "T1", event: str, channel: str = "C1",
                     platform: str = "slack") -> StoredTask:
        """A task as the memory accepts it (one INSERT; the lane and accepted_at fill themselves)."""
        task = Task(platform=platform, workspace="W1", channel=channel, thread=thread, user="U1", text="hi",
                    event_id=event)
        now = datetime.now(UTC).isoformat()
        rows = await self.pools[0]._write(
            "INSERT INTO tasks (platform, workspace, channel, event_id, status, body, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, 'accepted', $5, $6, $6) RETURNING id",
            task.platform, task.workspace, task.channel, task.event_id, task.model_dump_json(), now,
        )
        return StoredTask(id=rows[0]["id"], task=task, status=TaskStatus.ACCEPTED)

    async def finish(self, task_id: int) -> None:
        await self.pools[0]._write("UPDATE tasks SET status = 'done' WHERE id = $1", task_id)

    async def die(self, replica: SharedReplica) -> None:
        """The replica stops beating (as if SIGKILLed) and its last heartbeat is long past."""
        if replica._heart is not None:
            replica._heart.cancel()
        await self.pools[0]._write("UPDATE replicas SET seen_at = now() - interval '1 hour' WHERE id = $1", replica.id)


@pytest.fixture
async def replicas(coord_url):
    rs = Replicas(coord_url)
    yield rs
    await rs.close()


async def test_a_lanes_tasks_run_one_at_a_time_in_task_order_across_two_replicas(replicas):
    a, b = await replicas.open(), await replicas.open()
    lane = [await replicas.accept(event=f"e{i}") for i in range(12)]
    other = [await replicas.accept(thread="T2", event=f"o{i}") for i in range(4)]
    log: list[tuple[str, int]] = []

    async def work(replica: SharedReplica, stored: StoredTask) -> None:
        await replica.own(stored.id)
        async with replica.hold_task(stored):
            log.append(("start", stored.id))
            await asyncio.sleep(0.01)
            log.append(("end", stored.id))
            await replicas.finish(stored.id)

    # later tasks start waiting first, and the lane's tasks alternate between the two replicas
    jobs = [work(a if i % 2 else b, s) for i, s in reversed(list(enumerate(lane)))]
    jobs += [work(b if i % 2 else a, s) for i, s in enumerate(other)]
    await asyncio.wait_for(asyncio.gather(*jobs), 30)

    in_lane = [(what, tid) for what, tid in log if tid in {s.id for s in lane}]
    assert in_lane == [(what, s.id) for s in lane for what in ("start", "end")]
    in_other = [(what, tid) for what, tid in log if tid in {s.id for s in other}]
    assert in_other == [(what, s.id) for s in other for what in ("start", "end")]
    leases = await replicas.pools[0]._rows("SELECT count(*) AS n FROM lane_leases")
    owners = await replicas.pools[0]._rows("SELECT count(*) AS n FROM task_owners")
    assert leases[0]["n"] == 0 and owners[0]["n"] == 0  # finished tasks leave nothing behind


async def test_another_lane_has_one_holder_at_a_time_across_replicas(replicas):
    a, b = await replicas.open(), await replicas.open()
    inside, most = 0, 0

    async def turn(replica: SharedReplica) -> None:
        nonlocal inside, most
        async with replica.hold(("thread", "payments-1")):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    await asyncio.wait_for(asyncio.gather(*(turn(a if i % 2 else b) for i in range(20))), 30)
    assert most == 1


async def test_a_dead_replicas_unfinished_tasks_go_to_one_other_replica_after_its_lease(replicas):
    a, b, c = await replicas.open(), await replicas.open(), await replicas.open()
    mine = [await replicas.accept(event=f"e{i}", thread=f"T{i}") for i in range(6)]
    for stored in mine:
        await a.own(stored.id)
    done = await replicas.accept(event="finished")
    await a.own(done.id)
    await replicas.finish(done.id)
    discord = await replicas.accept(event="d1", platform="discord")
    await a.own(discord.id)

    assert await b.claim_orphans({"slack", "discord"}) == []  # a is alive: nothing is orphaned
    await replicas.die(a)
    got_b, got_c = await asyncio.gather(b.claim_orphans({"slack"}), c.claim_orphans({"slack"}))
    ids_b, ids_c = [s.id for s in got_b], [s.id for s in got_c]
    assert sorted(ids_b + ids_c) == [s.id for s in mine]  # each exactly once, finished ones never
    assert not set(ids_b) & set(ids_c)
    assert ids_b == sorted(ids_b) and ids_c == sorted(ids_c)
    assert all(s.task.platform == "slack" for s in got_b + got_c)  # discord waits for a discord replica
    assert await b.claim_orphans({"slack"}) == [] and await c.claim_orphans({"slack"}) == []
    assert [s.id for s in await c.claim_orphans({"discord"})] == [discord.id]


async def test_a_task_nobody_owned_is_taken_only_once_the_lease_has_passed(replicas):
    b = await replicas.open()
    fresh = await replicas.accept(event="fresh")  # its replica may be about to own it
    assert await b.claim_orphans({"slack"}) == []
    await replicas.pools[0]._write("UPDATE tasks SET accepted_at = now() - interval '1 hour' WHERE id = $1", fresh.id)
    assert [s.id for s in await b.claim_orphans({"slack"})] == [fresh.id]


async def test_a_lane_held_by_a_dead_replica_is_freed_after_its_lease(replicas):
    a, b = await replicas.open(), await replicas.open()
    first, second = await replicas.accept(event="e1", thread=None), await replicas.accept(event="e2", thread=None)
    entered = asyncio.Event()
    holding = a.hold(("thread", "inv-1"), first.id)
    await holding.__aenter__()  # a holds the lane and never lets go: it is killed

    async def b_turn() -> None:
        async with b.hold(("thread", "inv-1"), second.id):
            entered.set()

    waiter = asyncio.create_task(b_turn())
    await asyncio.sleep(0.3)
    assert not entered.is_set()  # a is alive: b waits
    await replicas.die(a)
    await asyncio.wait_for(entered.wait(), 10)
    await waiter


async def test_a_dead_replicas_earlier_task_runs_first_once_taken_over(replicas):
    a, b = await replicas.open(), await replicas.open()
    earlier, later = await replicas.accept(event="e1"), await replicas.accept(event="e2")
    await a.own(earlier.id)
    ran: list[int] = []

    async def run(replica: SharedReplica, stored: StoredTask) -> None:
        async with replica.hold_task(stored):
            ran.append(stored.id)
            await replicas.finish(stored.id)

    await b.own(later.id)
    waiting = asyncio.create_task(run(b, later))
    await asyncio.sleep(0.3)
    assert ran == []  # the earlier task is unfinished (its replica alive): the later one waits
    await replicas.die(a)
    orphans = await b.claim_orphans({"slack"})
    assert [s.id for s in orphans] == [earlier.id]
    await asyncio.wait_for(asyncio.gather(run(b, orphans[0]), waiting), 10)
    assert ran == [earlier.id, later.id]


async def test_a_stopping_replica_frees_its_lanes_and_tasks_at_once(replicas):
    a = await replicas.open()
    b = await replicas.open(poll=60.0)  # only NOTIFY can wake b in time
    first, second = await replicas.accept(event="e1"), await replicas.accept(event="e2")
    cut_short = await replicas.accept(event="e3", thread="T9")
    await a.own(cut_short.id)
    holding = a.hold(("thread", "inv-2"), first.id)
    await holding.__aenter__()
    entered = asyncio.Event()

    async def b_turn() -> None:
        async with b.hold(("thread", "inv-2"), second.id):
            entered.set()

    waiter = asyncio.create_task(b_turn())
    await asyncio.sleep(0.2)
    assert not entered.is_set()
    a._lanes.clear()
    await a.stop()  # signs off: no lease to wait for
    await asyncio.wait_for(entered.wait(), 10)
    await waiter
    assert [s.id for s in await b.claim_orphans({"slack"})] == [cut_short.id]


async def test_a_task_whose_work_broke_holds_nobody_up_and_resumes_when_its_replica_ends(replicas):
    a, b = await replicas.open(), await replicas.open()
    broken, next_one = await replicas.accept(event="e1"), await replicas.accept(event="e2")
    await a.own(broken.id)
    with pytest.raises(RuntimeError):
        async with a.hold_task(broken):
            raise RuntimeError("a bug")
    await b.own(next_one.id)
    async with asyncio.timeout(10):
        async with b.hold_task(next_one):  # not held up by the broken (parked) task
            await replicas.finish(next_one.id)
    assert await b.claim_orphans({"slack"}) == []  # parked with a live replica: a keeps it
    await replicas.die(a)
    assert [s.id for s in await b.claim_orphans({"slack"})] == [broken.id]


async def test_the_replica_fits_the_memory(coord_url, tmp_path):
    from engine.memory.store import SQLiteMemory

    sqlite = await SQLiteMemory.open(tmp_path / "m.db")
    pg = await PgCoordination.open(coord_url, min_size=1, max_size=2)
    try:
        assert isinstance(replica_for(sqlite), LocalReplica)
        shared = replica_for(pg, lease=7.0)
        assert isinstance(shared, SharedReplica) and shared.lease == 7.0
    finally:
        await sqlite.close()
        await pg.close()


async def test_the_engine_runs_through_the_replica_it_is_given(coord_url):
    """An idle shared replica has no busy lanes (len 0): the engine must still use it."""
    from engine.engine import Engine
    from engine.personas import PersonaRegistry
    from tests.fakes import ScriptedProvider

    store = await PgCoordination.open(coord_url, min_size=1, max_size=2)
    try:
        shared = SharedReplica(store)
        assert len(shared) == 0
        engine = Engine(None, ScriptedProvider(), PersonaRegistry.defaults(), replica=shared)
        assert engine.replica is shared and engine.lanes is shared
        assert isinstance(Engine(None, ScriptedProvider(), PersonaRegistry.defaults()).replica, LocalReplica)
    finally:
        await store.close()


async def test_a_task_another_replica_took_over_is_left_to_it(replicas):
    from engine.replicas import TaskTaken

    a, b = await replicas.open(), await replicas.open()
    earlier, slow = await replicas.accept(event="e1"), await replicas.accept(event="e2")
    await b.own(earlier.id)  # b runs the lane's first task: a's task waits behind it
    assert await a.own(slow.id)
    waiting = asyncio.create_task(a.hold_task(slow).__aenter__())
    await asyncio.sleep(0.2)
    assert not waiting.done()
    # a stalls past its lease: b takes its task over, and a must not run it too
    a._heart.cancel()
    await replicas.pools[0]._write("UPDATE replicas SET seen_at = now() - interval '1 hour' WHERE id = $1", a.id)
    assert [s.id for s in await b.claim_orphans({"slack"})] == [slow.id]
    await replicas.pools[0]._write("UPDATE replicas SET seen_at = now() WHERE id = $1", a.id)  # a comes back
    with pytest.raises(TaskTaken):
        await asyncio.wait_for(waiting, 10)
    # and a task a is too slow to own (another took it as ownerless) is not a's either
    late = await replicas.accept(event="e3", thread="T7")
    await replicas.pools[0]._write("UPDATE tasks SET accepted_at = now() - interval '1 hour' WHERE id = $1", late.id)
    assert [s.id for s in await b.claim_orphans({"slack"})] == [late.id]
    assert await a.own(late.id) is False
    assert await b.own(late.id) is True


async def test_two_engines_on_one_database_answer_a_thread_in_order_one_turn_at_a_time(coord_url):
    """Two engines (two replicas, each with its own pool) take a thread's messages in turns: each
    message is answered once, after the one before, whichever engine took it."""
    from engine.engine import Engine, EngineConfig
    from engine.memory.open import open_memory
    from engine.models import TaskKind
    from engine.personas import PersonaRegistry
    from tests.fakes import FakeOutbox, ScriptedProvider, by_mode

    engines, memories = [], []
    for _ in range(2):
        memory = await open_memory(coord_url)
        memories.append(memory)
        engine = Engine(memory, ScriptedProvider(fallback=by_mode, delay=0.02), PersonaRegistry.defaults(),
                        EngineConfig(), replica=replica_for(memory, lease=30.0))
        engine.register_outbox("test", FakeOutbox())
        await engine.start()
        engines.append(engine)
    try:
        assert all(isinstance(e.replica, SharedReplica) for e in engines)
        for n in range(8):  # one thread; the messages go to the two engines in turn
            await engines[n % 2].submit(Task(platform="test", workspace="W1", channel="C1", thread="ts0", user="U1",
                                             text=f"sophia, question {n}", event_id=f"q{n}", kind=TaskKind.MESSAGE,
                                             message_id=f"q{n}"))
        await asyncio.wait_for(asyncio.gather(*(e.wait_idle() for e in engines)), 60)
        rows = await memories[0]._rows("SELECT seq, task_id, role, text FROM turns ORDER BY seq")
    finally:
        for engine in engines:
            await engine.stop()
        for memory in memories:
            await memory.close()
    assert [r["role"] for r in rows] == ["human", "persona"] * 8
    assert [r["text"].split("question ")[1] for r in rows if r["role"] == "human"] == [str(n) for n in range(8)]
    ids = [r["task_id"] for r in rows]
    assert ids[0::2] == ids[1::2] and ids[0::2] == sorted(ids[0::2])


async def test_replicas_dead_for_a_day_are_forgotten_and_their_tasks_still_taken_over(replicas):
    a, b = await replicas.open(), await replicas.open()
    stored = await replicas.accept(event="e1")
    await a.own(stored.id)
    a._heart.cancel()
    await replicas.pools[0]._write("UPDATE replicas SET seen_at = now() - interval '2 days' WHERE id = $1", a.id)
    assert [s.id for s in await b.claim_orphans({"slack"})] == [stored.id]
    ids = [r["id"] for r in await replicas.pools[0]._rows("SELECT id FROM replicas")]
    assert a.id not in ids and b.id in ids


async def test_a_tasks_lane_is_its_thread_or_its_event_whatever_its_text_holds(replicas):
    await replicas.open()
    threaded = await replicas.accept(event="e1", thread='ts "1"\\')
    top = await replicas.accept(event="e2", thread=None)
    rows = await replicas.pools[0]._rows("SELECT id, lane FROM tasks ORDER BY id")
    lanes = {r["id"]: r["lane"] for r in rows}
    assert lanes[top.id] == "e2"
    assert lanes[threaded.id] not in (None, "e1")
    # a person's text that looks like a thread key, or holds a NUL, changes nothing
    tricky = Task(platform="slack", workspace="W1", channel="C1", thread='ts "1"\\', user="U1",
                  text='"thread":"other" \x00', event_id="e3")
    row = await replicas.pools[0]._write(
        "INSERT INTO tasks (platform, workspace, channel, event_id, status, body, created_at, updated_at) "
        "VALUES ('slack', 'W1', 'C1', 'e3', 'accepted', $1, 'x', 'x') RETURNING lane", tricky.model_dump_json())
    assert row[0]["lane"] == lanes[threaded.id]


async def test_a_heartbeat_wakes_the_sweep_only_when_a_dead_replica_left_tasks_of_its_platforms(replicas):
    a, b = await replicas.open(), await replicas.open(lease=0.6)  # b beats every 0.2 s
    assert await b.claim_orphans({"slack"}) == []  # as the engine does at start: b resumes slack tasks
    waiting = asyncio.create_task(b.orphans_waiting())
    discord = await replicas.accept(event="d1", platform="discord")
    await a.own(discord.id)
    await replicas.die(a)
    await asyncio.sleep(1.0)  # five heartbeats: a is dead, but its task is not for b's platforms
    assert not waiting.done()
    slack = await replicas.accept(event="s1")
    await replicas.pools[0]._write("INSERT INTO task_owners (task_id, replica) VALUES ($1, $2)", slack.id, a.id)
    await asyncio.wait_for(waiting, 10)
    assert [s.id for s in await b.claim_orphans({"slack"})] == [slack.id]


async def test_an_idle_engine_sweeps_nothing_until_a_replica_dies_with_work_then_takes_it_over(coord_url, replicas):
    """The engine's sweep waits for the heartbeat's word: idle, no statement but the heartbeat;
    a dead replica's task is still taken over and answered."""
    from engine.engine import Engine, EngineConfig
    from engine.memory.pg.store import PostgresMemory
    from engine.models import TaskKind
    from engine.personas import PersonaRegistry
    from tests.fakes import FakeOutbox, ScriptedProvider, by_mode

    class CountingMemory(PostgresMemory):
        claims = 0

        async def claim_orphans(self, replica, platforms, lease):
            self.claims += 1
            return await super().claim_orphans(replica, platforms, lease)

    memory = await CountingMemory.open(coord_url)
    outbox = FakeOutbox()
    engine = Engine(memory, ScriptedProvider(fallback=by_mode), PersonaRegistry.defaults(), EngineConfig(),
                    replica=replica_for(memory, lease=0.6))  # a heartbeat every 0.2 s
    engine.register_outbox("test", outbox)
    a = await replicas.open()
    try:
        await engine.start()
        await asyncio.sleep(1.5)
        assert memory.claims == 1  # at start only: the idle heartbeats found nothing to take over
        task = Task(platform="test", workspace="W1", channel="C1", thread="ts0", user="U1", text="sophia, question",
                    event_id="q1", kind=TaskKind.MESSAGE, message_id="q1")
        rows = await replicas.pools[0]._write(
            "INSERT INTO tasks (platform, workspace, channel, event_id, status, body, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, 'accepted', $5, now()::text, now()::text) RETURNING id",
            task.platform, task.workspace, task.channel, task.event_id, task.model_dump_json(),
        )
        assert await a.own(rows[0]["id"])
        await replicas.die(a)
        deadline = asyncio.get_running_loop().time() + 30
        while not outbox.posts:
            assert asyncio.get_running_loop().time() < deadline, "the dead replica's task was not taken over"
            await asyncio.sleep(0.05)
        await asyncio.wait_for(engine.wait_idle(), 30)
        status = await memory._rows("SELECT status FROM tasks WHERE id = $1", rows[0]["id"])
        assert status[0]["status"] == "done"
    finally:
        await engine.stop()
        await memory.close()


async def test_a_lane_freed_while_the_listener_is_lost_is_still_taken_and_listening_resumes(replicas):
    """The connection that LISTENs (and carries the heartbeat) is cut: the waiters' poll still
    gets them the lane, the heartbeat goes on, and the next one listens again."""
    a = await replicas.open(lease=1.5)  # both beat every 0.5 s
    b = await replicas.open(lease=1.5, poll=0.3)

    async def turn_after_a(key: str) -> None:
        """a holds the lane while b starts waiting for it; a lets go; b gets it."""
        holding = a.hold(key)
        await holding.__aenter__()
        entered = asyncio.Event()

        async def b_turn() -> None:
            async with b.hold(key):
                entered.set()

        waiter = asyncio.create_task(b_turn())
        await asyncio.sleep(0.2)
        assert not entered.is_set()
        await holding.__aexit__(None, None, None)  # frees the lane: NOTIFY
        await asyncio.wait_for(entered.wait(), 10)
        await waiter

    # the listening connection is cut: the NOTIFY never reaches b, whose waiter still gets the lane
    lost = b.store._life
    await replicas.pools[0]._write("SELECT pg_terminate_backend($1)", lost.get_server_pid())
    await turn_after_a("lane-1")  # within the waiters' poll
    # b's next heartbeat listens again on another connection: NOTIFY wakes it, no poll needed
    for _ in range(100):
        if b.store._life is not None and b.store._life is not lost and not b.store._life.is_closed():
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    beat = await replicas.pools[0]._rows("SELECT now() - seen_at < interval '1.5 s' AS alive FROM replicas WHERE id = $1",
                                         b.id)
    assert beat[0]["alive"]  # its heartbeat went on: nobody takes b's work for a dead replica's
    b.poll = 60.0  # from now on only NOTIFY can wake b in time
    await turn_after_a("lane-2")


async def test_a_replica_back_from_a_stall_does_not_sweep_for_its_own_tasks(replicas):
    b = await replicas.open(lease=0.6)  # beats every 0.2 s
    assert await b.claim_orphans({"slack"}) == []
    mine = await replicas.accept(event="e1")
    assert await b.own(mine.id)
    waiting = asyncio.create_task(b.orphans_waiting())
    # b stalled past its lease (its heartbeat is old): its next beat reads the old one
    await replicas.pools[0]._write("UPDATE replicas SET seen_at = now() - interval '1 hour' WHERE id = $1", b.id)
    await asyncio.sleep(1.0)
    assert not waiting.done()  # its own task is running here: nothing to take over
    other = await replicas.accept(event="e2", thread="T2")
    await replicas.pools[0]._write("INSERT INTO replicas (id, seen_at) VALUES ('gone', now() - interval '1 hour')")
    await replicas.pools[0]._write("INSERT INTO task_owners (task_id, replica) VALUES ($1, 'gone')", other.id)
    await asyncio.wait_for(waiting, 10)  # another's task, though: the sweep is woken
    waiting.cancel()
