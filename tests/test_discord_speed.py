"""What the adapter does to answer a burst quickly: a top-level mention's thread and webhook are
made as soon as it is stored (not when her first post needs them), and a channel's webhook is
found with the server's other channels' in one request.

discord.py's real client against the local Discord; the engine is a small fake that stores
tasks and does no work, so whatever Discord sees was done by the adapter alone.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

pytest.importorskip("discord")

from adapters.discord.app import DiscordAdapter  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from engine.models import Accepted, Task  # noqa: E402
from engine.personas import PersonaRegistry  # noqa: E402
from tests.servers import discord_payloads as wire  # noqa: E402
from tests.servers.discord_api import TOKEN, DiscordServer, connected  # noqa: E402

pytest_plugins = ["tests.servers.fixtures"]

THREADS = "POST /channels/{channel_id}/messages/{message_id}/threads"


class StoringEngine:
    """Stores tasks (a duplicate event id is a duplicate) and never works on them."""

    def __init__(self) -> None:
        self.personas = PersonaRegistry.defaults()
        self.tasks: list[Task] = []
        self._ids = itertools.count(1)
        self._seen: dict[str, int] = {}

    async def submit(self, task: Task) -> Accepted:
        if task.event_id in self._seen:
            return Accepted(task_id=self._seen[task.event_id], duplicate=True)
        self.tasks.append(task)
        self._seen[task.event_id] = next(self._ids)
        return Accepted(task_id=self._seen[task.event_id])

    async def is_known_thread(self, *args: Any) -> bool:
        return False

    async def memory_list(self, *args: Any) -> list[Any]:
        return []

    async def recent_places(self, *args: Any, **kw: Any) -> list[Any]:
        return []


@pytest_asyncio.fixture
async def bot(discord_server: DiscordServer, tmp_path) -> AsyncIterator[tuple[DiscordServer, DiscordAdapter, StoringEngine]]:
    engine = StoringEngine()
    adapter = DiscordAdapter(load_settings(
        db=tmp_path / "orchestra.db", discord_token=TOKEN, discord_api_url=discord_server.url,
        discord_gateway_url=discord_server.gateway_url,
    ), engine)
    await adapter.verify()
    try:
        async with connected(adapter.client, discord_server, start=adapter.run):
            yield discord_server, adapter, engine
    finally:
        await adapter.stop()


async def settle(adapter: DiscordAdapter) -> None:
    for _ in range(3):
        await asyncio.sleep(0.05)
        await adapter.listeners.idle()


async def test_a_stored_mention_gets_its_thread_and_webhook_before_the_engine_works(bot) -> None:
    s, adapter, engine = bot
    m = await s.mention("sophia why did sign-ups drop on Monday?")
    await settle(adapter)
    assert len(engine.tasks) == 1  # stored, and nothing else happened in the engine
    threads = s.of(THREADS)
    assert [t.path.split("/")[4] for t in threads] == [m["id"]]
    assert threads[0]["name"] == "sophia why did sign-ups drop on Monday?"
    assert [h["name"] for h in s.of("POST /channels/{channel_id}/webhooks")] == ["Orchestra"]
    assert not s.webhook_executions() and not s.channel_posts()  # nothing said before she answers
    # her first post finds both there: no second thread, no second webhook
    assert adapter.outbox.webhooks.cached(int(m["channel_id"])) is not None
    assert int(m["id"]) in adapter.outbox._threads


async def test_a_duplicate_delivery_prepares_nothing_twice(bot) -> None:
    s, adapter, engine = bot
    await s.mention("karen is the pricing page ready?")
    await settle(adapter)
    await s.gateway.redeliver(s.gateway.last_seq("MESSAGE_CREATE"))
    await settle(adapter)
    assert len(engine.tasks) == 1
    assert len(s.of(THREADS, ok_only=False)) == 1
    assert len(s.of("GET /channels/{channel_id}/webhooks") + s.of("GET /guilds/{guild_id}/webhooks")) <= 1


async def test_only_top_level_mentions_of_people_allowed_get_a_thread_made_early(discord_server: DiscordServer, tmp_path) -> None:
    s = discord_server
    engine = StoringEngine()
    adapter = DiscordAdapter(load_settings(
        db=tmp_path / "orchestra.db", discord_token=TOKEN, discord_api_url=s.url, discord_gateway_url=s.gateway_url,
        allowed_users=[s.alice["id"]],
    ), engine)
    await adapter.verify()
    try:
        async with connected(adapter.client, s, start=adapter.run):
            await s.dm("sophia, what is a cohort?")
            thread = s.add_thread(s.general_id, "an old thread")
            await s.mention("sophia and here?", channel_id=int(thread["id"]))
            await s.mention("let me in", author=s.bob)
            m = await s.mention("sophia, one more?")
            await settle(adapter)
    finally:
        await adapter.stop()
    assert len(engine.tasks) == 3  # the DM, the mention in a thread, alice's last mention
    assert [t.path.split("/")[4] for t in s.of(THREADS, ok_only=False)] == [m["id"]]


async def test_mentions_in_many_channels_find_their_webhooks_with_one_request(bot) -> None:
    s, adapter, engine = bot
    earlier = str(wire.snowflake())  # #random has ours from an earlier run
    s.webhooks[int(earlier)] = {
        "id": earlier, "type": 1, "guild_id": str(s.guild_id), "channel_id": str(s.random_id), "user": s.bot,
        "name": "Orchestra", "avatar": None, "token": "whtok-earlier", "application_id": str(s.application_id),
    }
    channels = [s.general_id, s.random_id] + [int(s.add_channel(f"c{i}")["id"]) for i in range(3)]
    await asyncio.gather(*(s.mention(f"sophia question {i}", channel_id=c) for i, c in enumerate(channels)))
    await settle(adapter)
    assert len(s.of("GET /guilds/{guild_id}/webhooks")) == 1 and not s.of("GET /channels/{channel_id}/webhooks")
    made = s.of("POST /channels/{channel_id}/webhooks")
    assert sorted(int(r.path.split("/")[2]) for r in made) == sorted(c for c in channels if c != s.random_id)
    assert adapter.outbox.webhooks.cached(s.random_id).id == int(earlier)  # found, not made again


async def test_without_manage_webhooks_server_wide_each_channel_is_asked(discord_server: DiscordServer, tmp_path) -> None:
    s = discord_server
    role = next(r for r in s.roles if int(r["id"]) == s.bot_role_id)
    role["permissions"] = str(int(role["permissions"]) & ~wire.MANAGE_WEBHOOKS)  # granted per channel only
    engine = StoringEngine()
    adapter = DiscordAdapter(load_settings(
        db=tmp_path / "orchestra.db", discord_token=TOKEN, discord_api_url=s.url, discord_gateway_url=s.gateway_url,
    ), engine)
    await adapter.verify()
    try:
        async with connected(adapter.client, s, start=adapter.run):
            await s.mention("sophia one", channel_id=s.general_id)
            await s.mention("sophia two", channel_id=s.random_id)
            await settle(adapter)
            assert adapter.outbox.webhooks.cached(s.general_id) and adapter.outbox.webhooks.cached(s.random_id)
    finally:
        await adapter.stop()
    assert len(s.of("GET /guilds/{guild_id}/webhooks", ok_only=False)) == 1  # refused once, not asked again
    assert len(s.of("GET /channels/{channel_id}/webhooks")) == 2
    assert len(s.of("POST /channels/{channel_id}/webhooks")) == 2


async def test_a_failed_reading_of_the_servers_webhooks_is_not_kept(bot) -> None:
    s, adapter, engine = bot
    s.fail("GET /guilds/{guild_id}/webhooks", 404, 0, "404: Not Found")  # once; discord.py does not retry it
    await s.mention("sophia one", channel_id=s.general_id)
    await settle(adapter)
    await s.mention("sophia two", channel_id=s.random_id)
    await settle(adapter)
    assert adapter.outbox.webhooks.cached(s.general_id) and adapter.outbox.webhooks.cached(s.random_id)
    assert [r.path.split("/")[2] for r in s.of("GET /channels/{channel_id}/webhooks")] == [str(s.general_id)]
    assert len(s.of("GET /guilds/{guild_id}/webhooks", ok_only=False)) == 2  # read again after the failure


CALLBACK = "POST /interactions/{webhook_id}/{webhook_token}/callback"


async def test_investigate_is_acknowledged_in_one_post_that_asks_nothing_back(bot) -> None:
    """The acknowledgement is one callback without `?with_response`: Discord answers 204, and the
    bot parses no message it would not read (half of an acknowledgement's cost under a burst)."""
    s, adapter, engine = bot
    payload = await s.slash_command("investigate", {"problem": "why is checkout slow? @everyone"})
    await s.wait_for(lambda: s.callbacks_for(payload))
    [post] = s.of(CALLBACK, ok_only=False)
    assert "with_response" not in post.query and post.status == 204
    assert post.json["type"] == 4
    assert post.json["data"]["flags"] == 64  # private to the person who asked
    assert post.json["data"]["allowed_mentions"] == {"parse": []}  # notifies nobody
    assert "Starting an investigation" in post.json["data"]["content"]
    assert [t.kind.value for t in engine.tasks] == ["investigate"]  # stored (before: the fake stores at once)


async def test_a_rate_limited_acknowledgement_is_retried_by_discord_py(bot) -> None:
    """A 429 (or a 5xx) on the plain POST hands the answer to discord.py, which waits and retries:
    the interaction is answered once."""
    s, adapter, engine = bot
    s.rate_limit(CALLBACK, times=1, retry_after=0.05)
    payload = await s.slash_command("investigate", {"problem": "why are refunds slow?"})
    await s.wait_for(lambda: s.callbacks_for(payload), timeout=10)
    first, *rest = s.of(CALLBACK, ok_only=False)
    assert first.status == 429 and "with_response" not in first.query  # the plain POST came first
    assert [r.status for r in rest] == [200]  # then discord.py's own, once
    assert len(s.callbacks_for(payload)) == 1 and s.callbacks_for(payload)[0].type == 4


async def test_a_mentions_thread_waits_for_the_acknowledgements_owed_before_it(bot) -> None:
    """Interactions are stored and answered first: while an acknowledgement is owed (an
    interaction being stored), a mention is stored at once but its thread is made only after."""
    from engine.intake import Intake

    s, adapter, engine = bot
    engine.intake = Intake(patience=5.0)
    async with engine.intake.taking():  # an interaction being stored and acknowledged
        m = await s.mention("sophia why did sign-ups drop on Monday?")
        await s.wait_for(lambda: engine.tasks)  # the mention itself is stored meanwhile
        await asyncio.sleep(0.2)
        assert s.of(THREADS, ok_only=False) == []  # no REST call of its own before the ack
    await settle(adapter)
    assert [t.path.split("/")[4] for t in s.of(THREADS)] == [m["id"]]


async def test_clicks_and_deferred_commands_are_acknowledged_in_one_plain_post(bot) -> None:
    """A button click (type 6) and a deferred command (`/memory`: type 5, private) are answered
    like `/investigate`: one callback that asks nothing back; the command's follow-up still works."""
    s, adapter, engine = bot
    button = {"type": 2, "style": 2, "label": "Challenge", "custom_id": "orchestra:challenge:payments-1"}
    message = s.create_message(s.general_id, s.bot, {"content": "the plan", "components": [
        {"type": 1, "components": [button]}]})
    click = await s.click(int(message["id"]), button["custom_id"])
    await s.wait_for(lambda: s.callbacks_for(click))
    assert [t.kind.value for t in engine.tasks] == ["challenge"]
    memory = await s.slash_command("memory")
    await s.wait_for(lambda: s.callbacks_for(memory))
    await s.wait_for(lambda: s.of("POST /webhooks/{webhook_id}/{webhook_token}"), timeout=5)  # the follow-up
    posts = s.of(CALLBACK, ok_only=False)
    assert [(p.json["type"], p.json.get("data"), p.status) for p in posts] == [(6, None, 204), (5, {"flags": 64}, 204)]
    assert all("with_response" not in p.query for p in posts)
