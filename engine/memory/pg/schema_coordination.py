"""PostgreSQL DDL, version 1: replicas and their heartbeats, task owners, lane leases."""

COORDINATION_SCHEMA = """
"""
