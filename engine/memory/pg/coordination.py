"""PostgreSQL: the part of the memory that lets several replicas share one database: who is alive,
who owns which task, who holds which lane (`engine.replicas.SharedReplica` uses it; the tables
are in `schema_coordination`).

Each method is one statement, so it is atomic against every other replica without a lock held
across round trips:

- taking a lane is one INSERT ... ON CONFLICT DO UPDATE that succeeds only when the lane is free
  or its holder's heartbeat is older than the lease, and, for a task's own lane, only when no
  earlier task of that lane is unfinished (so the lane's tasks run in task-id order whichever
  replica accepted them);
- freeing a lane deletes the lease and sends NOTIFY in the same statement (delivered when it
  commits), so waiters on other replicas try again at once;
- the heartbeat also says, in the same statement, whether a dead replica left tasks behind, so
  that an idle replica's only statement is its heartbeat (the sweep runs when there is work);
- claiming orphans updates the owner only where the owner read as dead is still the owner
  (PostgreSQL re-checks an UPDATE's condition on the row it waited for), and inserts an owner
  for a task without one with ON CONFLICT DO NOTHING: two replicas sweeping together never
  both get a task.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection

import asyncpg

from engine.memory.pg.connection import PgConnection
from engine.memory.records import StoredTask
from engine.memory.tasks import stored_task

log = logging.getLogger(__name__)

#: The NOTIFY channel on which freed lanes are announced (the payload is the lane's key).
LANES_CHANNEL = "orchestra_lanes"

_UNFINISHED = "('accepted', 'running')"
_ALIVE = "seen_at > now() - make_interval(secs => $LEASE)"


#: Unfinished tasks of the platforms $2 whose owner is dead under the lease $3 (or that have none,
#: accepted longer than the lease ago): what `claim_orphans` takes, and the heartbeat looks for.
_ORPHANS = f"""
    SELECT t.id, o.replica AS owner
    FROM tasks t LEFT JOIN task_owners o ON o.task_id = t.id
    WHERE t.status IN {_UNFINISHED} AND t.platform = ANY($2::text[])
      AND CASE WHEN o.task_id IS NULL
               THEN t.accepted_at < now() - make_interval(secs => $3::float8)
               ELSE NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = o.replica
                                AND r.seen_at > now() - make_interval(secs => $3::float8)) END"""

#: The heartbeat ($1: the replica), as CTEs ahead of the statement's SELECT; replicas dead for a
#: day (SIGKILLed, never signed off) are forgotten on the way (a missing row reads as dead too).
_BEAT = """WITH beat AS (INSERT INTO replicas (id, seen_at) VALUES ($1, now())
                          ON CONFLICT (id) DO UPDATE SET seen_at = now()),
                pruned AS (DELETE FROM replicas WHERE seen_at < now() - interval '1 day' AND id <> $1)"""


def _alive(n: int) -> str:
    """`replicas` rows alive under the lease passed as parameter $n."""
    return _ALIVE.replace("$LEASE", f"${n}::float8")


def _open(con: asyncpg.Connection) -> bool:
    """Whether a connection taken from the pool still works: one whose server connection was
    lost is closed, or already given back to the pool by asyncpg (which then raises on use)."""
    try:
        return not con.is_closed()
    except asyncpg.InterfaceError:
        return False


class PgCoordination(PgConnection):
    """Replica heartbeats, task owners and lane leases (see the module docstring)."""

    _life: asyncpg.Connection | None = None  # the LISTEN connection, which also carries the heartbeat
    _wake: Callable[[str], None] | None = None  # what a NOTIFY of a freed lane calls (`listen_lanes`)

    async def replica_alive(self, replica: str, lease: float | None = None, platforms: Collection[str] = ()) -> bool:
        """Heartbeat; with `lease` and `platforms`, in the same statement, whether some unfinished
        task of those platforms now waits for a new owner (the condition `claim_orphans` takes
        them on): so an idle replica looks for dead replicas' work without a statement of its own.

        On the connection held for LISTEN when there is one: a heartbeat must never wait for
        a connection of the pool behind a burst of work (the others would think this replica dead)."""
        if lease is None or not platforms:
            sql, args = f"{_BEAT} SELECT false AS orphans", (replica,)
        else:
            # not its own tasks: after a stall past the lease, this statement still reads its old beat
            sql = f"{_BEAT} SELECT EXISTS (SELECT 1 FROM ({_ORPHANS}) x WHERE x.owner IS DISTINCT FROM $1) AS orphans"
            args = (replica, list(platforms), lease)
        life = await self._life_connection()
        if life is not None:
            rows = await life.fetch(sql, *args)
        else:  # no listener (or its connection was lost): the pool, and waiters rely on the poll
            rows = await self._write(sql, *args)
        return bool(rows and rows[0]["orphans"])

    async def replica_gone(self, replica: str) -> None:
        await self._write(
            f"""
            WITH gone AS (DELETE FROM replicas WHERE id = $1),
                 freed AS (DELETE FROM lane_leases WHERE replica = $1 RETURNING key)
            SELECT pg_notify('{LANES_CHANNEL}', key) FROM freed
            """,
            replica,
        )

    async def own_task(self, replica: str, task_id: int) -> bool:
        """True when the task is this replica's (now or already); False when another has it
        (it took over a task this replica was too slow to own, or that it thought dead)."""
        rows = await self._write(
            """
            WITH mine AS (INSERT INTO task_owners (task_id, replica) VALUES ($1, $2)
                          ON CONFLICT (task_id) DO NOTHING RETURNING replica)
            SELECT replica FROM mine UNION ALL SELECT replica FROM task_owners WHERE task_id = $1
            """,
            task_id, replica,
        )
        return bool(rows) and rows[0]["replica"] == replica

    async def take_lane(self, replica: str, key: str, task_id: int | None, lease: float,
                        task_lane: tuple[str, str, str, str] | None = None) -> bool | None:
        """True: taken. False: wait (held by a live replica, or an earlier task of the lane is
        unfinished). None (a task's own lane only): the task is no longer this replica's: another
        took it over, believing this one dead; this one must leave it.

        A task's lane is read from its own row (`tasks.lane`, generated when it was accepted), so
        `task_lane` only says that the lane is a task's: its tasks go in task-id order."""
        if task_lane is None:
            taken = await self._write(
                f"""
                INSERT INTO lane_leases AS l (key, replica, task_id) VALUES ($1, $2, $3::bigint)
                ON CONFLICT (key) DO UPDATE SET replica = excluded.replica, task_id = excluded.task_id
                WHERE (l.replica = excluded.replica AND l.task_id IS NOT DISTINCT FROM excluded.task_id)
                   OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = l.replica AND r.{_alive(4)})
                RETURNING key
                """,
                key, replica, task_id, lease,
            )
            return bool(taken)
        # an earlier unfinished task of the lane goes first, unless it is parked with a live owner
        rows = await self._write(
            f"""
            WITH mine AS (SELECT EXISTS (SELECT 1 FROM task_owners WHERE task_id = $3 AND replica = $2) AS yes),
                 taken AS (
                     INSERT INTO lane_leases AS l (key, replica, task_id)
                     SELECT $1, $2, $3::bigint
                     WHERE (SELECT yes FROM mine) AND NOT EXISTS (
                         SELECT 1 FROM tasks me JOIN tasks e
                           ON e.platform = me.platform AND e.workspace = me.workspace
                          AND e.channel = me.channel AND e.lane = me.lane
                         WHERE me.id = $3 AND e.status IN {_UNFINISHED} AND e.id < $3
                           AND NOT EXISTS (
                               SELECT 1 FROM task_owners o JOIN replicas r ON r.id = o.replica
                               WHERE o.task_id = e.id AND o.parked AND r.{_alive(4)}))
                     ON CONFLICT (key) DO UPDATE SET replica = excluded.replica, task_id = excluded.task_id
                     WHERE (l.replica = excluded.replica AND l.task_id IS NOT DISTINCT FROM excluded.task_id)
                        OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = l.replica AND r.{_alive(4)})
                     RETURNING key)
            SELECT (SELECT yes FROM mine) AS mine, EXISTS (SELECT 1 FROM taken) AS taken
            """,
            key, replica, task_id, lease,
        )
        if not rows[0]["mine"]:
            return None
        return bool(rows[0]["taken"])

    async def free_lane(self, replica: str, key: str, task_id: int | None, *, task_ended: bool = False) -> None:
        if not task_ended:
            await self._write(
                f"""
                WITH freed AS (DELETE FROM lane_leases
                               WHERE key = $1 AND replica = $2 AND task_id IS NOT DISTINCT FROM $3::bigint
                               RETURNING key)
                SELECT pg_notify('{LANES_CHANNEL}', key) FROM freed
                """,
                key, replica, task_id,
            )
            return
        # the task's work here is over: finished, its owner row goes; not finished, it is parked
        await self._write(
            f"""
            WITH freed AS (DELETE FROM lane_leases
                           WHERE key = $1 AND replica = $2 AND task_id IS NOT DISTINCT FROM $3::bigint
                           RETURNING key),
                 left_over AS (SELECT EXISTS (SELECT 1 FROM tasks WHERE id = $3 AND status IN {_UNFINISHED}) AS yes),
                 settled AS (DELETE FROM task_owners
                             WHERE task_id = $3 AND replica = $2 AND NOT (SELECT yes FROM left_over)),
                 parked AS (UPDATE task_owners SET parked = true
                            WHERE task_id = $3 AND replica = $2 AND (SELECT yes FROM left_over))
            SELECT pg_notify('{LANES_CHANNEL}', key) FROM freed
            """,
            key, replica, task_id,
        )

    async def claim_orphans(self, replica: str, platforms: Collection[str], lease: float) -> list[StoredTask]:
        """Unfinished tasks of these platforms whose owner is dead (or that have none, accepted
        longer than the lease ago), now owned by `replica`, in task-id order."""
        rows = await self._write(
            f"""
            WITH -- replicas long dead (SIGKILLed, never signed off): a missing row reads as dead too
                 pruned AS (DELETE FROM replicas WHERE seen_at < now() - interval '1 day'),
                 orphans AS ({_ORPHANS}),
                 taken AS (UPDATE task_owners o SET replica = $1, parked = false FROM orphans x
                           WHERE o.task_id = x.id AND o.replica = x.owner
                           RETURNING o.task_id),
                 adopted AS (INSERT INTO task_owners (task_id, replica)
                             SELECT id, $1 FROM orphans WHERE owner IS NULL
                             ON CONFLICT (task_id) DO NOTHING
                             RETURNING task_id),
                 claimed AS (SELECT task_id FROM taken UNION ALL SELECT task_id FROM adopted)
            SELECT t.id, t.body, t.status, t.error FROM tasks t JOIN claimed c ON c.task_id = t.id ORDER BY t.id
            """,
            replica, list(platforms), lease,
        )
        return [stored_task(r) for r in rows]

    async def listen_lanes(self, wake: Callable[[str], None]) -> Callable[[], Awaitable[None]]:
        """One connection of the pool stays LISTENing until the returned function is awaited; if
        it is lost (the server restarted, a proxy cut it), the next heartbeat listens again on a
        new one (lanes freed in between wake their waiters through the waiters' poll)."""
        self._wake = wake
        try:
            await self._listen()
        except BaseException:
            self._wake = None
            raise

        async def unlisten() -> None:
            con, self._life, self._wake = self._life, None, None
            if con is None:
                return
            try:
                if _open(con):
                    await con.remove_listener(LANES_CHANNEL, self._heard)
            finally:
                await self._pool.release(con)

        return unlisten

    def _heard(self, _con, _pid, _channel, payload: str) -> None:
        if self._wake is not None:
            self._wake(payload)

    async def _listen(self) -> asyncpg.Connection:
        """Take a connection of the pool and LISTEN on it: the new `_life`."""
        con = await self._pool.acquire()
        try:
            await con.add_listener(LANES_CHANNEL, self._heard)
        except BaseException:
            await self._pool.release(con)
            raise
        self._life = con
        return con

    async def _life_connection(self) -> asyncpg.Connection | None:
        """The LISTEN connection, listening again on a new one if it was lost; None when this
        replica does not listen, or cannot now (the pool serves the heartbeat meanwhile)."""
        life = self._life
        if life is not None and _open(life):
            return life
        if self._wake is None:  # not listening (never started, or stopped)
            return None
        if life is not None:
            log.warning("the connection listening for freed lanes was lost; listening again")
            self._life = None
            with contextlib.suppress(Exception):
                await self._pool.release(life)
        try:
            return await self._listen()
        except Exception:  # noqa: BLE001 - the next heartbeat tries again; waiters poll meanwhile
            log.warning("cannot listen for freed lanes yet; waiters poll meanwhile", exc_info=True)
            return None
