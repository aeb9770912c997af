"""The engine's memory: SQLite (through aiosqlite) and the records it stores."""

from engine.memory.recall import fts_terms
from engine.memory.records import (
    ForgetResult,
    Phase,
    Recollection,
    StoredTask,
    TaskStatus,
    ThreadKind,
    ThreadRecord,
    ThreadStatus,
    ThreadSummary,
    TurnRecord,
    TurnRole,
)
from engine.memory.store import MemoryVersionError, SQLiteMemory

__all__ = [
    "ForgetResult",
    "MemoryVersionError",
    "Phase",
    "Recollection",
    "SQLiteMemory",
    "StoredTask",
    "TaskStatus",
    "ThreadKind",
    "ThreadRecord",
    "ThreadStatus",
    "ThreadSummary",
    "TurnRecord",
    "TurnRole",
    "fts_terms",
]
