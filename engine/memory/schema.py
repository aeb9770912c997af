"""The memory's SQLite schema, and the conversion between its rows and the records.

Each channel that has threads gets a row in `channels` and, with it, a contiguous range of FTS
rowids (`channel id << 32`); its turns are numbered downwards from the top of that range, so that
the newest comes first in FTS5's natural order (why: `engine.memory.recall`). Triggers keep the
FTS index and the channel's statistics up to date.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from engine.memory.recall import _WORD
from engine.memory.records import ThreadRecord, TurnRecord

SCHEMA_VERSION = 6

#: Readable thread ids (version 2). `thread_ids` remembers which id each task's thread got, so a
#: task resumed after a crash finds its thread again; `id_counters` hands out the numbers per
#: stem ("payments-" → payments-1, payments-2, ...). Neither is touched when a channel is
#: forgotten, except that the forgotten tasks' rows go with them: a counter never goes back,
#: so an old id can never come to name new work.
_THREAD_IDS = """
CREATE TABLE IF NOT EXISTS id_counters (
    stem        TEXT PRIMARY KEY,           -- "payments-" (investigations), "payments-c" (conversations)
    last        INTEGER NOT NULL            -- the last number handed out; never decreases
);
CREATE TABLE IF NOT EXISTS thread_ids (
    task_id     INTEGER PRIMARY KEY,        -- the task that opened the thread
    thread_id   TEXT NOT NULL UNIQUE,       -- stem || n
    stem        TEXT NOT NULL,
    n           INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS thread_ids_count AFTER INSERT ON thread_ids BEGIN
    INSERT INTO id_counters (stem, last) VALUES (new.stem, new.n)
    ON CONFLICT (stem) DO UPDATE SET last = max(last, excluded.last);
END;
"""

#: Gives task :task the next id of :stem in one statement (group commit, no extra round trips);
#: the trigger advances the counter. No row back: the task has its id already (or the id is taken).
ALLOCATE_THREAD_ID = """
INSERT INTO thread_ids (task_id, thread_id, stem, n)
SELECT :task, :stem || n, :stem, n
FROM (SELECT coalesce((SELECT last FROM id_counters WHERE stem = :stem), 0) + 1 AS n)
WHERE NOT EXISTS (SELECT 1 FROM threads WHERE id = :stem || n)
ON CONFLICT (task_id) DO NOTHING
RETURNING thread_id
"""

#: Version 1 → 2. Threads of version 1 keep their ids (inv-8, conv-3); their tasks are noted so
#: that a task interrupted before the upgrade resumes on the same thread, and the counters of
#: "inv-" and "conv-" start past every task id, so even a forgotten old id is never given again.
MIGRATE_1_TO_2 = _THREAD_IDS + """
INSERT OR IGNORE INTO thread_ids (task_id, thread_id, stem, n)
    SELECT CAST(substr(id, 5) AS INTEGER), id, 'inv-', CAST(substr(id, 5) AS INTEGER)
    FROM threads WHERE id GLOB 'inv-[0-9]*'
    UNION ALL
    SELECT CAST(substr(id, 6) AS INTEGER), id, 'conv-', CAST(substr(id, 6) AS INTEGER)
    FROM threads WHERE id GLOB 'conv-[0-9]*';
INSERT INTO id_counters (stem, last)
    SELECT stem, (SELECT coalesce(max(id), 0) FROM tasks) FROM (SELECT 'inv-' AS stem UNION ALL SELECT 'conv-')
    WHERE true
    ON CONFLICT (stem) DO UPDATE SET last = max(last, excluded.last);
"""

#: Version n-1 -> n: the statements that bring a database from the previous version to this one.
#: A new database runs the version-1 schema, then every step, so both paths end up the same.
MIGRATIONS: dict[int, str] = {
    # 2: readable thread ids (see above).
    2: MIGRATE_1_TO_2,
    # 3: posting without losing or doubling (see engine.posting). An intent is written before a
    # post goes out, so a resumed task knows to look for a post the platform may have accepted
    # before the crash; a placeholder ("Sophia is thinking…") is written before it is shown,
    # and replaced by the next post of that persona in that thread, even after a restart.
    3: """
CREATE TABLE intents (
    key         TEXT PRIMARY KEY,
    task_id     INTEGER,
    platform    TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    thread      TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX intents_channel ON intents (platform, workspace, channel);
CREATE TABLE placeholders (
    key         TEXT PRIMARY KEY,
    task_id     INTEGER,
    platform    TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    thread      TEXT NOT NULL,              -- '' for none
    persona     TEXT NOT NULL,
    message_id  TEXT,                       -- NULL: about to be posted (or posted, unrecorded)
    created_at  TEXT NOT NULL,
    UNIQUE (platform, workspace, channel, thread, persona)
);
CREATE INDEX placeholders_task ON placeholders (task_id);
CREATE INDEX placeholders_message ON placeholders (platform, workspace, channel, message_id);
-- Recording a post settles its intent, and the placeholder it replaced, in the same statement.
CREATE TRIGGER posts_settle AFTER INSERT ON posts BEGIN
    DELETE FROM intents WHERE key = new.key;
    DELETE FROM placeholders WHERE platform = new.platform AND workspace = new.workspace
        AND channel = new.channel AND message_id = new.message_id;
END;
""",
    # 4: personas from a source that can be away (Notion). `persona_sets` keeps the last set that
    # loaded whole from each source, so a bot started while the source is unreachable still has
    # its personas; `persona_changes` is the admin history (who changed which persona, when, what).
    4: """
CREATE TABLE persona_sets (
    source        TEXT PRIMARY KEY,         -- "notion:<data source id>", "yaml:/path/personas.yaml"
    personas_json TEXT NOT NULL,            -- [Persona.model_dump(mode="json"), ...]
    loaded_at     TEXT NOT NULL
);
CREATE TABLE persona_changes (
    id            INTEGER PRIMARY KEY,
    persona       TEXT NOT NULL,
    source        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    at            TEXT NOT NULL,
    action        TEXT NOT NULL,            -- create | update | archive | import
    changes_json  TEXT NOT NULL             -- {field: [old, new]}
);
CREATE INDEX persona_changes_persona ON persona_changes (persona, id);
""",
    # 5: scheduled jobs (see bot.scheduler). A (job, due) row is claimed before the job runs for
    # that due time: a second claim (a restart, a second replica) inserts nothing and runs nothing.
    # outcome: NULL while running (and after a crash mid-run), else 'ok', 'failed' or 'skipped'.
    5: """
CREATE TABLE job_runs (
    job         TEXT NOT NULL,
    due         TEXT NOT NULL,              -- the due time it ran for (UTC, fixed width)
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT,
    detail      TEXT,                       -- one line: "2 nudges sent", the failure's reason
    PRIMARY KEY (job, due)
);
""",
    # 6: the scheduled jobs ask, per thread, whether a task came in for it (a reply, a click):
    # an index on the task's platform thread, so that costs a lookup, not a read of the channel's
    # every task (engine.memory.maintenance).
    6: """
CREATE INDEX tasks_thread ON tasks (platform, workspace, channel, json_extract(body, '$.thread'));
""",
}

#: The schema as version 1 made it; every later version is a step in MIGRATIONS.
SCHEMA_V1 = """
CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY,
    platform    TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    body        TEXT NOT NULL,              -- the Task, as JSON
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (platform, workspace, event_id)
);
CREATE INDEX tasks_unfinished ON tasks (id) WHERE status IN ('accepted', 'running');
CREATE INDEX tasks_channel ON tasks (platform, workspace, channel);

-- One row per channel that has threads: its FTS rowid range and the statistics recall needs.
CREATE TABLE channels (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a forgotten range stays empty
    platform    TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    docs        INTEGER NOT NULL DEFAULT 0,         -- turns numbered so far (the n of the last one)
    tokens      INTEGER NOT NULL DEFAULT 0,         -- words in them (average length for bm25)
    UNIQUE (platform, workspace, channel)
);

CREATE TABLE threads (
    id          TEXT PRIMARY KEY,
    chan        INTEGER NOT NULL REFERENCES channels (id),
    kind        TEXT NOT NULL,
    platform    TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    thread      TEXT,
    title       TEXT NOT NULL,
    inv_type    TEXT NOT NULL,
    phase       TEXT NOT NULL,
    status      TEXT NOT NULL,
    lead        TEXT,
    turn_count  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX threads_platform_thread ON threads (platform, workspace, channel, thread);
CREATE INDEX threads_channel ON threads (platform, workspace, channel, updated_at);
CREATE INDEX threads_stalled ON threads (updated_at)
    WHERE kind = 'investigation' AND status IN ('active', 'paused');

CREATE TABLE turns (
    id            INTEGER PRIMARY KEY,
    thread_id     TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    doc           INTEGER NOT NULL UNIQUE,      -- FTS rowid: (channel id << 32) + 2**32 - 1 - n
    ntok          INTEGER NOT NULL,
    task_id       INTEGER,
    step          INTEGER NOT NULL,
    role          TEXT NOT NULL,
    author        TEXT NOT NULL,
    mode          TEXT,
    text          TEXT NOT NULL,
    findings      TEXT,
    structured    INTEGER NOT NULL,
    confidence    TEXT,
    route         TEXT,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    model         TEXT,
    created_at    TEXT NOT NULL,
    UNIQUE (thread_id, seq)
);
CREATE INDEX turns_task ON turns (task_id, step) WHERE task_id IS NOT NULL;

CREATE VIRTUAL TABLE turns_fts USING fts5(
    text, content = 'turns', content_rowid = 'doc',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER turns_ai AFTER INSERT ON turns BEGIN
    INSERT INTO turns_fts (rowid, text) VALUES (new.doc, new.text);
    UPDATE channels SET docs = docs + 1, tokens = tokens + new.ntok WHERE id = new.doc >> 32;
END;
CREATE TRIGGER turns_ad AFTER DELETE ON turns BEGIN
    INSERT INTO turns_fts (turns_fts, rowid, text) VALUES ('delete', old.doc, old.text);
END;
CREATE TRIGGER turns_au AFTER UPDATE OF doc, text ON turns BEGIN
    INSERT INTO turns_fts (turns_fts, rowid, text) VALUES ('delete', old.doc, old.text);
    INSERT INTO turns_fts (rowid, text) VALUES (new.doc, new.text);
END;

CREATE TABLE posts (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL,
    task_id     INTEGER,
    platform    TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    thread      TEXT,
    message_id  TEXT NOT NULL,
    persona     TEXT NOT NULL,
    thread_id   TEXT,
    created_at  TEXT NOT NULL,
    UNIQUE (key, message_id)
);
CREATE INDEX posts_message ON posts (platform, workspace, channel, message_id);
"""

#: A new database: version 1, then every step, so new and migrated databases end up the same.
_SCHEMA = SCHEMA_V1 + "\n".join(step for _, step in sorted(MIGRATIONS.items()))

_THREAD_COLS = (
    "id, kind, platform, workspace, channel, thread, title, inv_type, phase, status, lead, "
    "turn_count, created_at, updated_at"
)
_TURN_COLS = (
    "id, thread_id, seq, task_id, step, role, author, mode, text, findings, structured, "
    "confidence, route, input_tokens, output_tokens, model, created_at"
)


def _ts(dt: datetime) -> str:
    """A fixed-width UTC timestamp, so that text order is time order (naive means UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="microseconds")  # what strftime gave, at a third of its cost


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _unjson(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _thread(row: Iterable[Any]) -> ThreadRecord:
    (id_, kind, platform, workspace, channel, thread, title, inv_type, phase, status, lead,
     turn_count, created_at, updated_at) = row
    return ThreadRecord(
        id=id_, kind=kind, platform=platform, workspace=workspace, channel=channel, thread=thread,
        title=title, inv_type=inv_type, phase=phase, status=status, lead=lead,
        turn_count=turn_count, created_at=_dt(created_at), updated_at=_dt(updated_at),
    )


def _turn(row: Iterable[Any]) -> TurnRecord:
    (id_, thread_id, seq, task_id, step, role, author, mode, text, findings, structured,
     confidence, route, input_tokens, output_tokens, model, created_at) = row
    return TurnRecord(
        id=id_, thread_id=thread_id, seq=seq, task_id=task_id, step=step, role=role,
        author=author, mode=mode, text=text, findings=_unjson(findings),
        structured=bool(structured), confidence=confidence, route=_unjson(route),
        input_tokens=input_tokens, output_tokens=output_tokens, model=model,
        created_at=_dt(created_at),
    )


#: Stores one turn: next seq in its thread, next (downward) FTS rowid in its channel; the
#: triggers index the text and count it in the channel. Parameters: `turn_params`.
INSERT_TURN = """
INSERT INTO turns (thread_id, seq, doc, ntok, task_id, step, role, author, mode, text, findings,
                   structured, confidence, route, input_tokens, output_tokens, model, created_at)
SELECT th.id,
       coalesce((SELECT max(seq) FROM turns WHERE thread_id = th.id), 0) + 1,
       (c.id << 32) + 4294967294 - c.docs,
       ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
FROM threads AS th JOIN channels AS c ON c.id = th.chan
WHERE th.id = ?
RETURNING id, seq
"""


def turn_params(turn: TurnRecord) -> tuple[Any, ...]:
    return (
        len(_WORD.findall(turn.text)), turn.task_id, turn.step, turn.role.value, turn.author,
        turn.mode, turn.text, _json(turn.findings), int(turn.structured), turn.confidence,
        _json(turn.route), turn.input_tokens, turn.output_tokens, turn.model,
        _ts(turn.created_at), turn.thread_id,
    )

