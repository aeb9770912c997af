"""PostgreSQL DDL, version 1: tasks, threads, turns, thread ids, posts, intents, placeholders, channels and recall (tsvector + GIN)."""

CORE_SCHEMA = """
"""
