"""Settings for several replicas: Discord split by shards (DISCORD_SHARD_IDS of DISCORD_SHARD_COUNT,
discord.py's sharded client against the local Discord) and the replica lease."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("discord")

import discord  # noqa: E402
from discord.gateway import DiscordWebSocket  # noqa: E402

from adapters.discord import DiscordAdapter  # noqa: E402
from adapters.discord.app import OrchestraClient, ShardedOrchestraClient  # noqa: E402
from bot.settings import SettingsError, load_settings  # noqa: E402
from tests.servers.discord_api import TOKEN, DiscordServer  # noqa: E402
from tests.test_cli import clean_env, orchestra  # noqa: E402


@pytest.fixture(autouse=True)
def gateway_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base, gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


@pytest.mark.parametrize(("values", "named", "says"), [
    ({"DISCORD_SHARD_IDS": "0,1"}, "DISCORD_SHARD_COUNT", "is not"),
    ({"DISCORD_SHARD_COUNT": "2"}, "DISCORD_SHARD_IDS", "is not"),
    ({"DISCORD_SHARD_IDS": "0,x", "DISCORD_SHARD_COUNT": "2"}, "DISCORD_SHARD_IDS", "not a shard number"),
    ({"DISCORD_SHARD_IDS": "-1", "DISCORD_SHARD_COUNT": "2"}, "DISCORD_SHARD_IDS", "not a shard number"),
    ({"DISCORD_SHARD_IDS": "0,2", "DISCORD_SHARD_COUNT": "2"}, "DISCORD_SHARD_IDS", "0 to 1"),
    ({"DISCORD_SHARD_IDS": "0", "DISCORD_SHARD_COUNT": "0"}, "DISCORD_SHARD_COUNT", "greater than or equal to 1"),
    ({"DISCORD_SHARD_IDS": "0", "DISCORD_SHARD_COUNT": "two"}, "DISCORD_SHARD_COUNT", "integer"),
    ({"ORCHESTRA_REPLICA_LEASE": "0.2"}, "ORCHESTRA_REPLICA_LEASE", "greater than or equal to 1"),
    ({"ORCHESTRA_REPLICA_LEASE": "soon"}, "ORCHESTRA_REPLICA_LEASE", "number"),
])
def test_a_bad_shard_or_lease_setting_is_named(monkeypatch, tmp_path, values, named, says):
    monkeypatch.setenv("ORCHESTRA_DB", str(tmp_path / "m.db"))
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    assert named in str(excinfo.value) and says in str(excinfo.value)


def test_good_shard_and_lease_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("ORCHESTRA_DB", str(tmp_path / "m.db"))
    assert load_settings().replica_lease == 15.0 and load_settings().discord_shard_count is None
    monkeypatch.setenv("DISCORD_SHARD_IDS", " 2, 0 ,2")
    monkeypatch.setenv("DISCORD_SHARD_COUNT", "3")
    monkeypatch.setenv("ORCHESTRA_REPLICA_LEASE", "5")
    settings = load_settings()
    assert settings.discord_shard_ids == [2, 0] and settings.discord_shard_count == 3 and settings.replica_lease == 5


def test_a_bad_shard_setting_stops_start_up_with_exit_2(tmp_path):
    result = orchestra(tmp_path, "serve", env=clean_env(tmp_path, DISCORD_TOKEN=TOKEN, DISCORD_SHARD_IDS="4",
                                                         DISCORD_SHARD_COUNT="2"))
    assert result.returncode == 2, result.stderr
    assert "DISCORD_SHARD_IDS" in result.stderr and "Traceback" not in result.stderr


class NoEngine:
    """The listeners are not exercised here."""


def test_without_shards_the_client_is_not_sharded(tmp_path):
    adapter = DiscordAdapter(load_settings(db=tmp_path / "m.db", discord_token=TOKEN), NoEngine())
    assert type(adapter.client) is OrchestraClient


async def test_a_replica_identifies_with_its_shard_of_the_count(tmp_path):
    stub = await DiscordServer(heartbeat_interval=200).start()
    settings = load_settings(db=tmp_path / "m.db", discord_token=TOKEN, discord_api_url=stub.url,
                             discord_gateway_url=stub.gateway_url, discord_shard_ids="1", discord_shard_count=2)
    adapter = DiscordAdapter(settings, NoEngine())
    try:
        assert isinstance(adapter.client, ShardedOrchestraClient)
        assert isinstance(adapter.client, discord.AutoShardedClient)
        await adapter.verify()
        running = asyncio.create_task(adapter.run())
        await asyncio.wait_for(adapter.client.wait_until_ready(), 10)
        (identify,) = stub.gateway.identifies  # one connection: shard 1 only
        assert identify["shard"] == [1, 2]
        assert adapter.client.shard_ids == [1] and adapter.client.shard_count == 2
        await adapter.stop_receiving()
        await asyncio.wait_for(running, 5)
    finally:
        await adapter.stop()
        await stub.stop()
    assert not stub.errors
