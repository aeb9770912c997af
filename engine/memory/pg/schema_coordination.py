"""PostgreSQL DDL, version 1: replicas and their heartbeats, task owners, lane leases.

Why these, and why so (the code that uses them: `engine.memory.pg.coordination`):

- `replicas`: one row per running replica, its heartbeat (`seen_at`, the server's clock, so the
  replicas' own clocks never matter). A replica whose heartbeat is older than the lease is dead.
- `task_owners`: which replica runs which unfinished task. `parked`: its work there ended
  without finishing it (an unexpected error); it resumes when that replica ends, as a single
  process resumes it on its next start, and it holds nobody up meanwhile.
- `lane_leases`: who holds a lane (a platform thread, an investigation): one row per held lane.
- Two columns on `tasks` (no copy of SQLite's: `orchestra db migrate` names SQLite's columns and
  these fill themselves): `lane`, the thread part of the task's lane key
  (`Task.thread_key`: thread, or the event for a top-level message), generated from the task's
  JSON so that it exists the moment the task is accepted, with no statement of ours in between.
  Read with a pattern, not parsed: PostgreSQL's JSON types refuse a NUL (\\u0000) that a
  person's text may hold, and inside a JSON string a `"` is always escaped, so `"thread":` can
  only be the key itself (the Task's `thread` comes before every free-text field anyway);
  and `accepted_at`, the server's time, so that a task whose replica died before owning it is
  taken over once the lease has passed. The partial index finds a lane's unfinished tasks.
"""

COORDINATION_SCHEMA = """
CREATE TABLE replicas (
    id          TEXT PRIMARY KEY,
    seen_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE task_owners (
    task_id     BIGINT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    replica     TEXT NOT NULL,
    parked      BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX task_owners_replica ON task_owners (replica);
CREATE TABLE lane_leases (
    key         TEXT PRIMARY KEY,
    replica     TEXT NOT NULL,
    task_id     BIGINT
);
CREATE INDEX lane_leases_replica ON lane_leases (replica);
ALTER TABLE tasks ADD COLUMN lane TEXT
    GENERATED ALWAYS AS (coalesce(nullif(substring(body FROM '"thread"[[:space:]]*:[[:space:]]*"((?:[^"\\\\]|\\\\.)*)"'), ''), event_id)) STORED;
ALTER TABLE tasks ADD COLUMN accepted_at TIMESTAMPTZ NOT NULL DEFAULT statement_timestamp();
CREATE INDEX tasks_lane ON tasks (platform, workspace, channel, lane, id)
    WHERE status IN ('accepted', 'running');
"""
