"""`orchestra db migrate --to postgresql://...`: copy a SQLite memory into an empty PostgreSQL one.

Why it is a plain copy: both backends have the same tables, column names and value encodings
(timestamps as fixed-width ISO text, JSON as text, booleans as 0/1), so every row goes across as
it is, table by table, with asyncpg's COPY. What it does, in order:

1. The SQLite file is opened once as Orchestra opens it (an older schema is brought up to date;
   a newer one is refused), then read in one read transaction (one consistent snapshot).
2. The PostgreSQL memory is opened as a replica would (its schema created under the advisory
   lock), then, in ONE transaction: its tables are locked against writers, checked to be empty
   (a target that holds data is refused: merging two memories would mix ids), filled in
   foreign-key order, and each identity column moved past the largest id copied (and past
   SQLite's AUTOINCREMENT high-water mark, so a forgotten channel's id is never given again).
   Then the rows of each table are counted on both sides, still inside that transaction: a
   difference fails it. A failure anywhere rolls it all back: the target is left empty, never
   half-filled.
3. The copied tables are analysed: a bulk load leaves the planner without statistics until
   autovacuum comes round, and recall's plans depend on them.

The tables copied are SQLite's (derived from the file, not from a list kept here), minus the
full-text index (`turns_fts` and its shadow tables: PostgreSQL's `turns.tsv` is a generated
column, computed as the rows arrive). Columns are SQLite's; a PostgreSQL column that SQLite does
not have is left to its default, and a generated one to PostgreSQL. The PostgreSQL memory keeps
its bookkeeping in its statements, not in triggers (engine.memory.pg.schema_core), so COPY does
exactly what it says. PostgreSQL's own coordination tables (replicas, leases) are not in SQLite
and are not touched.
"""

from __future__ import annotations

import graphlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.settings import SettingsError

BATCH = 5000  # rows per COPY: large enough to be fast, small enough to keep memory flat


class MigrationFailed(RuntimeError):
    """The two schemas do not match, or the counts differ: nothing was kept; exit 1."""


class CountsDiffer(MigrationFailed):
    """Some table's rows on PostgreSQL are not as many as on SQLite (the copy was rolled back)."""

    def __init__(self, report: "MigrationReport"):
        self.report = report
        tables = ", ".join(c.table for c in report.counts if not c.same)
        super().__init__(f"the counts differ in {tables}: the copy was rolled back and the PostgreSQL "
                         "database is left empty (a trigger or rule of its own on those tables?)")


@dataclass
class TableCount:
    table: str
    sqlite: int
    postgres: int

    @property
    def same(self) -> bool:
        return self.sqlite == self.postgres


@dataclass
class MigrationReport:
    source: Path
    target: str  # without its password
    counts: list[TableCount] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(c.postgres for c in self.counts)


# --- the SQLite side ------------------------------------------------------------------------------


def sqlite_tables(con: sqlite3.Connection) -> list[str]:
    """The SQLite memory's tables holding data: not SQLite's own, not a full-text index (a
    virtual table) nor its shadow tables (`turns_fts_data`, ...)."""
    rows = con.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table' ORDER BY name").fetchall()
    virtual = [name for name, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL TABLE")]
    return [name for name, _ in rows
            if not name.startswith("sqlite_") and name not in virtual
            and not any(name.startswith(v + "_") for v in virtual)]


def sqlite_columns(con: sqlite3.Connection, table: str) -> list[str]:
    # table_xinfo: hidden=2/3 are generated columns (computed, never copied)
    return [r[1] for r in con.execute(f'PRAGMA table_xinfo("{table}")') if r[6] in (0, 1)]


def sqlite_high_water(con: sqlite3.Connection) -> dict[str, int]:
    """AUTOINCREMENT's record of the largest id ever given, per table (ids of deleted rows too)."""
    try:
        return {name: seq for name, seq in con.execute("SELECT name, seq FROM sqlite_sequence")}
    except sqlite3.OperationalError:  # no AUTOINCREMENT table in this memory
        return {}


def open_source(path: Path) -> sqlite3.Connection:
    """The SQLite file, read-only (nothing here writes to it)."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    con.execute("BEGIN")  # one snapshot for every table and every count
    return con


# --- the PostgreSQL side --------------------------------------------------------------------------


def _to_int(v: Any) -> Any:
    return v if v is None or isinstance(v, int) else int(v)


def _to_text(v: Any) -> Any:
    """PostgreSQL's text cannot hold NUL, which SQLite's can: U+FFFD in its place, as the
    PostgreSQL memory itself writes it (a row refused would fail the whole copy)."""
    if v is None:
        return None
    text = v if isinstance(v, str) else (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
    return text.replace("\x00", "\ufffd")


def _to_float(v: Any) -> Any:
    return v if v is None else float(v)


def _to_bool(v: Any) -> Any:
    return v if v is None else bool(v)


CONVERT: dict[str, Callable[[Any], Any]] = {
    "smallint": _to_int, "integer": _to_int, "bigint": _to_int, "text": _to_text,
    "character varying": _to_text, "double precision": _to_float, "real": _to_float,
    "numeric": _to_float, "boolean": _to_bool,
}


async def pg_columns(con: Any, table: str) -> dict[str, tuple[str, bool, bool]]:
    """name -> (data type, generated, identity) of a PostgreSQL table in the current schema."""
    rows = await con.fetch(
        "SELECT column_name, data_type, is_generated, is_identity FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = $1", table)
    return {r["column_name"]: (r["data_type"], r["is_generated"] == "ALWAYS", r["is_identity"] == "YES") for r in rows}


async def fk_order(con: Any, tables: list[str]) -> list[str]:
    """`tables` with every table after the ones its foreign keys point to (channels before
    threads before turns), so each COPY's rows find their parents already there."""
    edges = await con.fetch(
        "SELECT c.relname AS child, p.relname AS parent FROM pg_constraint k "
        "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid "
        "WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace")
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter({t: set() for t in tables})
    for e in edges:
        if e["child"] in tables and e["parent"] in tables and e["child"] != e["parent"]:
            sorter.add(e["child"], e["parent"])
    return list(sorter.static_order())


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- the copy -------------------------------------------------------------------------------------


async def migrate(source: Path, target_url: str, *, say: Callable[[str], None] = lambda _: None,
                  source_setting: str = "--from") -> MigrationReport:
    """Copy the SQLite memory at `source` into the empty PostgreSQL memory at `target_url`.
    Raises `SettingsError` (exit 2: a missing file, an unreachable or non-empty target, a newer
    schema) or `MigrationFailed` (exit 1: counts differ, schemas do not match)."""
    import asyncpg

    from bot.memory_open import open_postgres, open_sqlite, postgres_problem
    from engine.memory.url import safe_url

    if not source.is_file():
        raise SettingsError([f"{source_setting}: there is no SQLite memory at {source}: give the file the bot "
                             "used (`orchestra db status` shows ORCHESTRA_DB's)"])
    await (await open_sqlite(source, setting=source_setting)).close()  # brought up to this code's schema
    await (await open_postgres(target_url, setting="--to")).close()  # the schema, created once
    report = MigrationReport(source=source, target=safe_url(target_url))
    lite = open_source(source)
    try:
        tables = sqlite_tables(lite)
        try:
            pg = await asyncpg.connect(target_url)
        except Exception as e:  # noqa: BLE001 - worded without the URL's password
            raise SettingsError([postgres_problem("--to", target_url, e)]) from None
        try:
            async with pg.transaction():
                plan = await _plan(pg, lite, tables)
                order = await fk_order(pg, tables)
                await pg.execute(f"LOCK TABLE {', '.join(_q(t) for t in order)} IN EXCLUSIVE MODE NOWAIT")
                busy = [t for t in order if await pg.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_q(t)})")]
                if busy:
                    raise SettingsError([f"--to: the PostgreSQL memory at {report.target} already holds data "
                                         f"({', '.join(busy)}): copy into an empty database (createdb ...), so "
                                         "that no two memories' ids are mixed"])
                high = sqlite_high_water(lite)
                for table in order:
                    n = await _copy_table(pg, lite, table, plan[table])
                    say(f"  {table:<16} {n:>9,} rows copied")
                    await _move_identities(pg, table, plan[table], high.get(table, 0))
                for table in order:  # before COMMIT: a difference keeps nothing
                    (n_lite,) = lite.execute(f"SELECT count(*) FROM {_q(table)}").fetchone()
                    n_pg = await pg.fetchval(f"SELECT count(*) FROM {_q(table)}")
                    report.counts.append(TableCount(table, n_lite, n_pg))
                if not all(c.same for c in report.counts):
                    raise CountsDiffer(report)
            await pg.execute(f"ANALYZE {', '.join(_q(t) for t in order)}")  # the planner's statistics, now
        except asyncpg.LockNotAvailableError:
            raise SettingsError([f"--to: the PostgreSQL memory at {report.target} is in use (a replica is "
                                 "running on it?): stop every replica, then migrate into an empty database"]) from None
        finally:
            await pg.close()
    finally:
        lite.close()
    return report


@dataclass
class _TablePlan:
    columns: list[str]  # copied, in SQLite's order
    converters: list[Callable[[Any], Any]]
    identities: list[str]  # PostgreSQL identity columns among them


async def _plan(pg: Any, lite: sqlite3.Connection, tables: list[str]) -> dict[str, _TablePlan]:
    """Which columns of each table go across; a SQLite table or column PostgreSQL lacks would
    be data lost, so it stops the copy before anything is written."""
    plans, missing = {}, []
    for table in tables:
        target = await pg_columns(pg, table)
        if not target:
            missing.append(table)
            continue
        columns = []
        for name in sqlite_columns(lite, table):
            if name not in target:
                missing.append(f"{table}.{name}")
            elif not target[name][1]:  # generated on PostgreSQL: computed there
                columns.append(name)
        plans[table] = _TablePlan(
            columns, [CONVERT.get(target[c][0], lambda v: v) for c in columns],
            [c for c in columns if target[c][2]],
        )
    if missing:
        raise MigrationFailed("the PostgreSQL memory has no place for " + ", ".join(missing)
                              + ": this Orchestra's two memories differ (a bug: please report it); nothing was copied")
    return plans


async def _copy_table(pg: Any, lite: sqlite3.Connection, table: str, plan: _TablePlan) -> int:
    cursor = lite.execute(f"SELECT {', '.join(_q(c) for c in plan.columns)} FROM {_q(table)}")
    copied = 0
    while batch := cursor.fetchmany(BATCH):
        records = [tuple(f(v) for f, v in zip(plan.converters, row)) for row in batch]
        await pg.copy_records_to_table(table, records=records, columns=plan.columns)
        copied += len(records)
    return copied


async def _move_identities(pg: Any, table: str, plan: _TablePlan, high_water: int) -> None:
    """The next id handed out on PostgreSQL comes after every id copied (and every id SQLite
    ever gave, for AUTOINCREMENT tables), so a new row never takes an old row's id."""
    for column in plan.identities:
        await pg.execute(
            f"SELECT setval(pg_get_serial_sequence($1, $2), "
            f"greatest(coalesce(max({_q(column)}), 0), $3::bigint) + 1, false) FROM {_q(table)}",
            _q(table), column, high_water)
