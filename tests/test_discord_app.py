"""How Discord runs: where calls go, which intents, the login check, the gateway, command sync.

discord.py's real client against the local Discord (tests/servers/discord_api.py); nothing here
touches the internet.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os

import pytest

pytest.importorskip("discord")

from tests.servers.discord_api import TOKEN, DiscordServer  # noqa: E402


import discord  # noqa: E402
from discord.gateway import DiscordWebSocket  # noqa: E402

from adapters.discord import DiscordAdapter  # noqa: E402
from adapters.discord.app import (  # noqa: E402
    INVITE_PERMISSIONS,
    DiscordIdentity,
    DiscordStartError,
    api_base_url,
    intents_for,
    invite_url,
)
from bot.settings import load_settings  # noqa: E402

PREFIXES = ("ORCHESTRA_", "ANTHROPIC_", "OPENAI_", "SLACK_", "DISCORD_")


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith(PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    base, gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


APP_ID = 2002


@pytest.fixture
async def stub():
    """The local Discord, reached only through the settings (DISCORD_API_URL, DISCORD_GATEWAY_URL)."""
    server = await DiscordServer(heartbeat_interval=200).start()
    yield server
    await server.stop()
    assert not server.errors


def settings_for(tmp_path, stub: DiscordServer | None = None, **overrides):
    values = dict(db=tmp_path / "memory.db", discord_token=TOKEN)
    if stub is not None:  # without /api/v10: the adapter adds it
        values.update(discord_api_url=stub.url, discord_gateway_url=stub.gateway_url)
    values.update(overrides)
    return load_settings(**values)


class NoEngine:
    """The listeners are not exercised here."""


# --- pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "base"),
    [
        (None, "https://discord.com/api/v10"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123/api/v10"),
        ("http://127.0.0.1:8123/", "http://127.0.0.1:8123/api/v10"),
        ("https://proxy.example/discord", "https://proxy.example/discord/api/v10"),
        ("https://staging.example/api/v10/", "https://staging.example/api/v10"),
        ("https://staging.example/api/v9", "https://staging.example/api/v9"),
    ],
)
def test_the_api_url_gets_api_v10_unless_it_has_an_api_path(given, base):
    assert api_base_url(given) == base


def test_intents_are_only_what_the_bot_reads(tmp_path):
    on = intents_for(settings_for(tmp_path))
    assert on.guilds and on.guild_messages and on.dm_messages and on.message_content
    assert not (on.members or on.presences or on.guild_reactions or on.voice_states or on.guild_typing)
    off = intents_for(settings_for(tmp_path, discord_message_content=False))
    assert off.guild_messages and not off.message_content


def test_the_invite_url_asks_for_the_scopes_and_permissions_in_the_docs():
    url = invite_url(APP_ID)
    assert url.startswith("https://discord.com/oauth2/authorize?client_id=2002&scope=bot+applications.commands")
    p = INVITE_PERMISSIONS
    assert p.view_channel and p.send_messages and p.send_messages_in_threads and p.create_public_threads
    assert p.read_message_history and p.embed_links and p.manage_webhooks and p.manage_threads
    assert not (p.administrator or p.add_reactions or p.mention_everyone or p.manage_messages)
    assert f"permissions={p.value}" in url and p.value == 326954470400


def test_the_identity_line():
    me = DiscordIdentity(bot_name="orchestra", bot_id=APP_ID, application_id=APP_ID)
    assert me.connected(1) == "Discord: connected as @orchestra (1 server)"
    assert me.connected(3, message_content=False).startswith("Discord: connected as @orchestra (3 servers); "
                                                             "DISCORD_MESSAGE_CONTENT=false")
    assert invite_url(APP_ID) in me.connected(0)


# --- against the local Discord ------------------------------------------------------------------


async def test_the_adapter_points_rest_and_gateway_at_the_settings(tmp_path, stub):
    adapter = DiscordAdapter(settings_for(tmp_path, stub), NoEngine())
    try:
        assert discord.http.Route.BASE == stub.api_url == f"{stub.url}/api/v10"
        assert str(DiscordWebSocket.DEFAULT_GATEWAY) == stub.gateway_url
        assert adapter.client.intents.message_content
        assert adapter.client.allowed_mentions.to_dict() == {"parse": []}  # a forgotten send notifies nobody
        assert adapter.client.listeners is adapter.listeners and adapter.listeners.outbox is adapter.outbox
    finally:
        await adapter.stop()


async def test_verify_logs_in_and_syncs_the_commands_globally(tmp_path, stub):
    adapter = DiscordAdapter(settings_for(tmp_path, stub), NoEngine())
    try:
        identity = await adapter.verify()
        assert identity == DiscordIdentity(bot_name="orchestra", bot_id=stub.bot_id, application_id=stub.application_id)
        assert stub.of("GET /users/@me")
        assert "personas" in [c["name"] for c in stub.commands[None]]  # synced globally
        assert not stub.of("PUT /applications/{application_id}/guilds/{guild_id}/commands", ok_only=False)
    finally:
        await adapter.stop()


async def test_guild_ids_sync_to_each_guild_at_once(tmp_path, stub):
    adapter = DiscordAdapter(settings_for(tmp_path, stub, discord_guild_ids=str(stub.guild_id)), NoEngine())
    try:
        await adapter.verify()
        puts = [r.path for r in stub.requests if r.method == "PUT"]
        assert puts == [f"/applications/{stub.application_id}/guilds/{stub.guild_id}/commands"]
        assert "personas" in [c["name"] for c in stub.commands[stub.guild_id]] and None not in stub.commands
    finally:
        await adapter.stop()


async def test_a_guild_the_bot_is_not_in_is_named(tmp_path, stub):
    adapter = DiscordAdapter(settings_for(tmp_path, stub, discord_guild_ids="777"), NoEngine())
    try:
        with pytest.raises(DiscordStartError) as excinfo:
            await adapter.verify()
        assert excinfo.value.refused
        assert "DISCORD_GUILD_IDS" in str(excinfo.value) and "777" in str(excinfo.value)
        assert "applications.commands" in str(excinfo.value)
    finally:
        await adapter.stop()


async def test_a_refused_token_is_named_and_never_shown(tmp_path, stub):
    adapter = DiscordAdapter(settings_for(tmp_path, stub, discord_token="not-the-token-xyz"), NoEngine())
    try:
        with pytest.raises(DiscordStartError) as excinfo:
            await adapter.verify()
    finally:
        await adapter.stop()
    assert excinfo.value.refused and "Discord refused DISCORD_TOKEN" in str(excinfo.value)
    assert "Reset Token" in str(excinfo.value) and "not-the-token-xyz" not in str(excinfo.value)
    assert not any(r.method == "PUT" for r in stub.requests)  # nothing synced with a refused token


async def test_an_unreachable_discord_is_not_a_refusal(tmp_path, stub):
    url = stub.url
    await stub.stop()  # nothing listens there any more
    adapter = DiscordAdapter(settings_for(tmp_path, discord_api_url=url), NoEngine())
    try:
        with pytest.raises(DiscordStartError) as excinfo:
            await adapter.verify()
    finally:
        await adapter.stop()
    assert not excinfo.value.refused
    assert f"cannot reach Discord at {url}/api/v10" in str(excinfo.value) and "DISCORD_API_URL" in str(excinfo.value)


async def test_run_connects_identifies_with_the_intents_and_stops(tmp_path, stub):
    adapter = DiscordAdapter(settings_for(tmp_path, stub), NoEngine())
    try:
        await adapter.verify()
        running = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.client.wait_until_ready(), 10)
        assert [g.id for g in adapter.client.guilds] == [stub.guild_id]
        (identify,) = stub.gateway.identifies
        assert identify["token"] == TOKEN
        assert identify["intents"] == intents_for(adapter.settings).value
        await adapter.stop_receiving()
        await asyncio.wait_for(running, 5)  # returns: stopped on purpose, not an error
        assert running.exception() is None
    finally:
        await adapter.stop()
    assert adapter.client.is_closed()


async def test_start_up_heap_is_frozen_as_discord_says_it_is_connected(tmp_path, stub):
    """The composition root (`bot.platforms`, `bot.heap`) keeps what start-up made, a guild cache
    included, out of later collections once connected: a cold burst's first full collection
    walked it all (a 67 ms pause in the middle of 200 mentions)."""
    from bot.platforms import DiscordPlatform

    adapter = DiscordAdapter(settings_for(tmp_path, stub), NoEngine())
    said: list[str] = []
    platform = DiscordPlatform(adapter, announce=said.append)
    running = None
    try:
        await platform.verify()
        gc.unfreeze()  # whatever an earlier test in this process froze
        running = asyncio.create_task(platform.run())
        for _ in range(500):
            if said:
                break
            await asyncio.sleep(0.01)
        assert said and said[0].startswith("Discord: connected")
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        await adapter.stop()


async def test_a_refused_message_content_intent_says_what_to_do(tmp_path, stub):
    stub.gateway.allowed_intents = 0  # Message Content off in the developer portal
    adapter = DiscordAdapter(settings_for(tmp_path, stub), NoEngine())
    try:
        await adapter.verify()
        with pytest.raises(DiscordStartError) as excinfo:
            await asyncio.wait_for(adapter.run(), 10)
    finally:
        await adapter.stop()
    assert excinfo.value.refused
    assert "Message Content Intent" in str(excinfo.value) and "Bot" in str(excinfo.value)
    assert "DISCORD_MESSAGE_CONTENT=false" in str(excinfo.value)


async def test_without_message_content_the_bot_connects_without_asking_for_it(tmp_path, stub):
    stub.gateway.allowed_intents = 0
    adapter = DiscordAdapter(settings_for(tmp_path, stub, discord_message_content="false"), NoEngine())
    try:
        await adapter.verify()
        running = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.client.wait_until_ready(), 10)
        assert not stub.gateway.identifies[0]["intents"] & (1 << 15)
        await adapter.stop_receiving()
        await asyncio.wait_for(running, 5)
    finally:
        await adapter.stop()


async def test_a_lost_connection_is_logged_and_resumed(tmp_path, stub, caplog):
    caplog.set_level(logging.INFO, logger="adapters.discord.app")
    adapter = DiscordAdapter(settings_for(tmp_path, stub), NoEngine())
    try:
        await adapter.verify()
        running = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.client.wait_until_ready(), 10)
        await stub.gateway.drop(4000)
        await stub.wait_for(lambda: stub.gateway.resumes, timeout=10)
        said = lambda: [r.getMessage() for r in caplog.records if r.name == "adapters.discord.app"]  # noqa: E731
        await stub.wait_for(lambda: any("session resumed" in line for line in said()), timeout=10)
        assert len(stub.gateway.identifies) == 1  # resumed, not a new session
        assert any("gateway connection lost" in line for line in said())
        await adapter.stop_receiving()
        await asyncio.wait_for(running, 5)
    finally:
        await adapter.stop()


async def test_building_the_client_says_nothing_about_voice(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    discord.VoiceClient.warn_nacl = True  # as in a fresh process
    adapter = DiscordAdapter(settings_for(tmp_path), NoEngine())
    await adapter.stop()
    assert not [r for r in caplog.records if r.name.startswith("discord")]


async def test_unset_urls_leave_discord_pys_own(tmp_path, stub):
    discord.http.Route.BASE = "http://elsewhere.invalid/api/v10"  # e.g. a test that pointed it itself
    adapter = DiscordAdapter(settings_for(tmp_path), NoEngine())
    await adapter.stop()
    assert discord.http.Route.BASE == "http://elsewhere.invalid/api/v10"
    assert str(DiscordWebSocket.DEFAULT_GATEWAY) == "wss://gateway.discord.gg/"


async def test_commands_discord_refuses_stop_start_up_without_blaming_a_setting(tmp_path, stub, caplog):
    stub.fail("PUT /applications/{application_id}/commands", 400, 50035, "Invalid Form Body")
    adapter = DiscordAdapter(settings_for(tmp_path, stub), NoEngine())
    try:
        with pytest.raises(DiscordStartError) as excinfo:
            await adapter.verify()
    finally:
        await adapter.stop()
    assert not excinfo.value.refused
    assert str(excinfo.value) == "Discord refused Orchestra's slash commands (HTTP 400); the log has the details"
    assert any("Invalid Form Body" in r.getMessage() for r in caplog.records)  # the details: in the log only


async def test_a_gateway_that_cannot_be_reached_at_start_stops_with_the_setting_named(tmp_path, stub):
    closed = DiscordServer()
    await closed.start()
    gateway = closed.gateway_url
    await closed.stop()  # nothing listens there any more
    adapter = DiscordAdapter(settings_for(tmp_path, stub, discord_gateway_url=gateway), NoEngine())
    try:
        await adapter.verify()
        with pytest.raises(DiscordStartError) as excinfo:
            await asyncio.wait_for(adapter.run(), 20)
    finally:
        await adapter.stop()
    assert not excinfo.value.refused
    assert f"cannot connect to Discord's gateway at {gateway}" in str(excinfo.value)
    assert "DISCORD_GATEWAY_URL" in str(excinfo.value)
