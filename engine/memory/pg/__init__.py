"""The engine's memory on PostgreSQL (asyncpg): the same records and guarantees as the SQLite one.

`PostgresMemory` (engine.memory.pg.store) is put together like `SQLiteMemory`, one part per idea,
each a subclass of the connection they share (`engine.memory.pg.connection`). Nothing above the
memory port knows which of the two is in use: `engine.memory.open.open_memory` picks it from
`ORCHESTRA_DB`.
"""
