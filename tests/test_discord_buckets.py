"""discord.py's rate-limit buckets are swept once a minute, not at every new bucket (a burst in
many channels would otherwise scan them all each time)."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("discord")

import discord  # noqa: E402

from adapters.discord.app import OrchestraClient  # noqa: E402
from adapters.discord.buckets import sweep_rarely  # noqa: E402
from bot.settings import load_settings  # noqa: E402


def _go_idle(http, keys) -> None:
    """Make these buckets look unused for 301 s (discord.py lets them go after 300)."""
    for key in keys:
        http._buckets[key]._last_request -= 301


async def test_idle_buckets_are_swept_buckets_at_most_once_a_minute(tmp_path) -> None:
    now = [1000.0]
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    sweep_rarely(http, every=60.0, clock=lambda: now[0])

    first = [f"first:{i}" for i in range(300)]
    for key in first:
        http.get_ratelimit(key)
    assert len(http._buckets) == 300  # swept as it grew past 256, but nothing was idle then
    _go_idle(http, first)
    now[0] += 61
    http.get_ratelimit("a new one")
    assert list(http._buckets) == ["a new one"]  # the idle ones went, as discord.py lets them go

    second = [f"second:{i}" for i in range(300)]
    for key in second:
        http.get_ratelimit(key)
    _go_idle(http, second)
    now[0] += 30
    http.get_ratelimit("within the minute")
    assert len(http._buckets) == 302  # no sweep within the minute: no scan per new bucket

    now[0] += 31
    http.get_ratelimit("after the minute")
    assert sorted(http._buckets) == ["a new one", "after the minute", "within the minute"]


async def test_the_adapters_client_has_the_rare_sweep(tmp_path) -> None:
    client = OrchestraClient(load_settings(db=tmp_path / "o.db", discord_token="t"))
    http = client.http
    keys = [f"k:{i}" for i in range(300)]
    for key in keys:
        http.get_ratelimit(key)
    _go_idle(http, keys)
    http.get_ratelimit("next")  # the first sweep past 256 was at the 256th bucket: a minute has not passed
    assert len(http._buckets) == 301
