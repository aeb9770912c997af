"""PostgreSQL DDL, version 1: persona sets, persona changes, job runs."""

ADMIN_SCHEMA = """
"""
