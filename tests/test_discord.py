"""The Discord adapter end to end: discord.py's real Client against the local Discord
(tests/servers/discord_api.py), our listeners and outbox, the real engine on a SQLite file with
the offline provider. Assertions are on what reached Discord: which webhook, username, avatar,
thread, embeds, allowed mentions."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest
import pytest_asyncio

from adapters.discord.app import DiscordAdapter
from adapters.discord.listeners import DiscordListeners
from adapters.discord.outbox import DiscordOutbox
from adapters.discord.webhooks import WEBHOOK_NAME, ChannelWebhooks
from bot.settings import load_settings
from engine.engine import Engine, EngineConfig
from engine.memory.store import SQLiteMemory
from engine.models import Reply, ReplyKind
from engine.personas import PersonaRegistry
from engine.providers import OfflineProvider
from tests.servers.discord_api import TOKEN, DiscordServer, connected
from tests.servers.discord_payloads import MANAGE_GUILD

pytest_plugins = ["tests.servers.fixtures"]

EXECUTE = "POST /webhooks/{webhook_id}/{webhook_token}"


@dataclass
class Rig:
    server: DiscordServer
    client: discord.Client
    engine: Engine
    memory: SQLiteMemory
    outbox: DiscordOutbox
    listeners: DiscordListeners
    db_path: Path

    async def settle(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0.05)
            await self.listeners.idle()
            await self.engine.wait_idle()


async def make_rig(server: DiscordServer, tmp_path, **settings: Any) -> AsyncIterator[Rig]:
    """The real adapter (adapters/discord/app.py), reaching the local Discord through its settings."""
    memory = await SQLiteMemory.open(tmp_path / "orchestra.db")
    engine = Engine(memory, OfflineProvider(), PersonaRegistry.defaults(), EngineConfig())
    adapter = DiscordAdapter(load_settings(
        db=tmp_path / "orchestra.db", discord_token=TOKEN, discord_api_url=server.url,
        discord_gateway_url=server.gateway_url, **settings,
    ), engine)
    engine.register_outbox("discord", adapter.outbox)
    await adapter.verify()
    try:
        async with connected(adapter.client, server, start=adapter.run):
            rig = Rig(server, adapter.client, engine, memory, adapter.outbox, adapter.listeners, tmp_path / "orchestra.db")
            yield rig
            await rig.settle()
    finally:
        await adapter.stop()
        await memory.close()


@pytest_asyncio.fixture
async def rig(discord_server: DiscordServer, tmp_path) -> AsyncIterator[Rig]:
    async for r in make_rig(discord_server, tmp_path):
        yield r


def task_count(rig: Rig, kind: str | None = None) -> int:
    with sqlite3.connect(rig.db_path) as db:
        if kind is None:
            return db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        return db.execute("SELECT COUNT(*) FROM tasks WHERE json_extract(body, '$.kind') = ?", (kind,)).fetchone()[0]


def executions(server: DiscordServer) -> list[Any]:
    return server.webhook_executions()


def footer_keys(body: dict[str, Any]) -> list[str]:
    return [((e.get("footer") or {}).get("text") or "") for e in body.get("embeds") or []]


async def test_a_mention_gets_a_thread_and_a_webhook_post_as_the_persona(rig: Rig) -> None:
    s = rig.server
    m = await s.mention("sophia why did signups drop last week?")
    await rig.settle()
    # the thread was created from the mention (same id), named after the question
    threads = s.of("POST /channels/{channel_id}/messages/{message_id}/threads")
    assert len(threads) == 1 and threads[0].path.split("/")[4] == m["id"]
    assert threads[0]["name"].startswith("sophia why did signups drop")
    assert threads[0]["auto_archive_duration"] == 1440
    # one webhook in #general, named Orchestra, every post through it into the thread
    hooks = s.of("POST /channels/{channel_id}/webhooks")
    assert len(hooks) == 1 and hooks[0]["name"] == "Orchestra"
    posts = executions(s)
    assert posts and all(p.query.get("thread_id") == m["id"] for p in posts)
    assert all(p.query.get("wait") in ("true", "True", "1") for p in posts)
    assert {p["username"] for p in posts} == {"Sophia"}
    assert all(p.get("avatar_url") for p in posts) or rig.engine.personas["sophia"].voice.avatar_url is None
    # the answer mentions only the asker
    last = rig.server.of("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}") or posts
    body = last[-1].json
    am = body["allowed_mentions"]
    assert am.get("parse") == [] and am.get("users") in ([s.alice["id"]], [int(s.alice["id"])])
    assert not rig.server.channel_posts()  # nothing in the bot's own name


async def test_a_named_persona_answers_and_a_thread_follow_up_continues(rig: Rig) -> None:
    s = rig.server
    m = await s.mention("Karen: is the pricing page ready?")
    await rig.settle()
    assert {p["username"] for p in executions(s)} == {"Karen"}
    before = len(s.webhook_executions()) + len(s.of("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"))
    await s.user_message("and what about the FAQ?", channel_id=int(m["id"]))  # in the thread, no mention
    await rig.settle()
    after = len(s.webhook_executions()) + len(s.of("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"))
    assert after > before
    assert all(p.query.get("thread_id") == m["id"] for p in executions(s))
    # still one webhook for the channel
    assert len(s.of("POST /channels/{channel_id}/webhooks")) == 1


async def test_a_reply_to_sophias_message_goes_to_sophia(rig: Rig) -> None:
    s = rig.server
    m = await s.mention("sophia what is our churn?")
    await rig.settle()
    sophia_msg = executions(s)[-1].response
    # a question in a thread the engine does not know, replying to Sophia's message
    await s.user_message("tell me more about that", channel_id=int(m["id"]), reply_to=int(sophia_msg["id"]))
    await rig.settle()
    assert {p["username"] for p in executions(s)} == {"Sophia"}
    assert len(executions(s)) + len(s.of("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}")) >= 3


async def test_bots_and_webhooks_never_start_turns(rig: Rig) -> None:
    s = rig.server
    await s.bot_message(f"<@{s.bot_id}> hello from a bot")
    await s.webhook_message(f"<@{s.bot_id}> hello from a hook")
    await rig.settle()
    assert not executions(s) and not s.channel_posts()
    assert task_count(rig) == 0


EDIT = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"


def posted_and_edited(server: DiscordServer) -> list[Any]:
    return sorted(server.webhook_executions() + server.of(EDIT), key=lambda r: r.at)


async def test_investigate_is_stored_before_acknowledged_then_root_thread_turns_and_buttons(rig: Rig) -> None:
    s = rig.server
    stored: list[float] = []
    original = rig.engine.submit

    async def submit(task):  # when SQLite had the task
        accepted = await original(task)
        stored.append(time.monotonic())
        return accepted

    rig.engine.submit = submit  # type: ignore[method-assign]
    payload = await s.slash_command("investigate", {"problem": "intermittent 401s on checkout", "persona": "sophia"})
    await s.wait_for(lambda: s.callbacks_for(payload))
    await rig.settle()
    assert task_count(rig, "investigate") == 1
    assert len(stored) == 1 and stored[0] <= s.callbacks_for(payload)[0].at
    callback = s.callbacks_for(payload)[0]
    assert callback.type == 4 and callback.data["flags"] & 64  # an ephemeral answer
    assert "Starting an investigation" in callback.data["content"]
    # the root went to #general (no thread), then a thread was made from it, named by the title
    posts = executions(s)
    root = posts[0]
    assert "thread_id" not in root.query and root["username"] == "Sophia"
    threads = s.of("POST /channels/{channel_id}/messages/{message_id}/threads")
    assert [t.path.split("/")[4] for t in threads] == [root.response["id"]]
    assert threads[0]["name"] == "intermittent 401s on checkout"
    later = [p for p in posted_and_edited(s) if p is not root]
    assert later and all(p.query.get("thread_id") == root.response["id"] for p in later)
    assert all(p.json.get("embeds") for p in later)
    with_buttons = [p for p in later if p.json.get("components")]
    assert with_buttons, "turns carry challenge/plan/close buttons"
    custom_ids = {c["custom_id"].split(":")[1] for p in with_buttons for row in p["components"] for c in row["components"]}
    assert {"challenge", "plan", "close", "crew"} <= custom_ids  # the plan's turn offers the crew hand-off


async def test_a_double_click_makes_one_task_and_the_buttons_give_way_to_a_line(rig: Rig) -> None:
    s = rig.server
    await s.slash_command("investigate", {"problem": "why are refunds slow?"})
    await rig.settle()
    with_buttons = [p for p in posted_and_edited(s) if "orchestra:challenge:" in str(p.json.get("components"))]
    message_id = int(with_buttons[-1].response["id"])
    custom_id = next(c["custom_id"] for row in with_buttons[-1]["components"] for c in row["components"]
                     if c["custom_id"].startswith("orchestra:challenge:"))
    first = await s.click(message_id, custom_id)
    second = await s.click(message_id, custom_id)
    await s.wait_for(lambda: s.callbacks_for(first) and s.callbacks_for(second))
    await rig.settle()
    assert task_count(rig, "challenge") == 1
    assert s.callbacks_for(first)[0].type == 6  # deferred update
    # the clicked message lost its buttons for "↪ Challenge requested by <@alice>"
    edits = [e for e in s.of(EDIT) if e.path.split("/")[-1] == str(message_id) and e.json.get("components") == []]
    assert edits and f"<@{s.alice['id']}>" in edits[-1]["content"]


async def test_a_deleted_webhook_is_recreated_once_and_the_post_is_not_lost(rig: Rig) -> None:
    s = rig.server
    await s.mention("sophia first question")
    await rig.settle()
    hook_id = int(executions(s)[0].path.split("/")[2])
    s.delete_webhook(hook_id)
    m = await s.mention("sophia second question")
    await rig.settle()
    hooks = s.of("POST /channels/{channel_id}/webhooks")
    assert len(hooks) == 2
    new_id = hooks[-1].response["id"]
    answered = [p for p in executions(s) if p.query.get("thread_id") == m["id"]]
    assert answered and all(p.path.split("/")[2] == str(new_id) for p in answered)


async def test_without_manage_webhooks_posts_go_out_as_the_bot_with_the_name_in_bold(rig: Rig, caplog) -> None:
    s = rig.server
    s.deny_manage_webhooks(s.general_id)
    m = await s.mention("karen is the launch on track?")
    await rig.settle()
    assert not executions(s)
    posts = s.channel_posts(int(m["id"]))
    assert posts and all(p["content"].lstrip().startswith(("**Karen**", f"<@{s.alice['id']}>")) for p in posts)
    assert any("**Karen**" in p["content"] for p in posts)
    assert all(p["allowed_mentions"].get("parse") == [] for p in posts)
    warnings = [r for r in caplog.records if "Manage Webhooks" in r.getMessage()]
    assert len(warnings) == 1
    await s.mention("karen and the budget?")
    await rig.settle()
    assert len([r for r in caplog.records if "Manage Webhooks" in r.getMessage()]) == 1  # remembered


async def test_a_dm_needs_no_mention_and_is_answered_as_the_bot(rig: Rig) -> None:
    s = rig.server
    m = await s.dm("sophia what is a cohort?")
    await rig.settle()
    assert not executions(s) and not s.of("POST /channels/{channel_id}/messages/{message_id}/threads")
    posts = s.channel_posts(int(m["channel_id"]))
    assert posts and any("**Sophia**" in p["content"] for p in posts)


def notice(rig: Rig, thread: str, text: str = "Still on it.", key: str = "") -> Reply:
    voice = rig.engine.personas["sophia"].voice
    return Reply(kind=ReplyKind.NOTICE, voice=voice, platform="discord", workspace=str(rig.server.guild_id),
                 channel=str(rig.server.general_id), thread=thread, text=text, key=key)


async def test_a_thread_archived_mid_investigation_is_reopened_for_the_post(rig: Rig) -> None:
    s = rig.server
    m = await s.mention("sophia first")
    await rig.settle()
    s.archive_thread(int(m["id"]))
    await asyncio.sleep(0.05)
    posted = await rig.outbox.post(notice(rig, m["id"], key="n:1"))
    assert s.of("PATCH /channels/{channel_id}")[-1].json == {"archived": False}
    assert executions(s)[-1].query.get("thread_id") == m["id"] and posted.thread == m["id"]


async def test_when_the_thread_cannot_be_reopened_the_post_goes_to_the_channel_saying_so(rig: Rig) -> None:
    s = rig.server
    m = await s.mention("sophia first")
    await rig.settle()
    s.archive_thread(int(m["id"]))
    s.fail("PATCH /channels/{channel_id}", 403, 50013, "Missing Permissions")
    await asyncio.sleep(0.05)
    await rig.outbox.post(notice(rig, m["id"], key="n:2"))
    last = executions(s)[-1]
    assert "thread_id" not in last.query and "is archived" in last["content"]


async def test_find_posted_recognises_our_post_by_its_key_and_resume_posts_only_missing_parts(rig: Rig) -> None:
    s = rig.server
    m = await s.mention("sophia first")
    await rig.settle()
    long_text = "\n\n".join(f"Paragraph {i}: " + "words " * 300 for i in range(8))  # several messages
    first = await rig.outbox.post(notice(rig, m["id"], long_text, key="long:1"))
    parts = len(executions(s))
    found = await rig.outbox.find_posted(str(s.general_id), m["id"], "long:1")
    assert found is not None and found.message_id == first.message_id
    assert await rig.outbox.find_posted(str(s.general_id), m["id"], "nothing:1") is None
    again = await rig.outbox.post(notice(rig, m["id"], long_text, key="long:1"), resume=found)
    assert again == found and len(executions(s)) == parts  # nothing was missing: nothing posted
    assert parts - 1 >= 3  # the mention's answer, then a notice split in several messages
    s.delete_message(int(executions(s)[-1].response["id"]))  # its last part never went out
    await rig.outbox.post(notice(rig, m["id"], long_text, key="long:1"), resume=found)
    assert len(executions(s)) == parts + 1
    assert executions(s)[-1].json["embeds"][-1]["footer"]["text"] == executions(s)[-2].json["embeds"][-1]["footer"]["text"]


async def test_allowlisted_channels_refuse_a_mention_once_and_stay_silent_otherwise(discord_server, tmp_path) -> None:
    async for rig in make_rig(discord_server, tmp_path, allowed_channels=["1"]):
        s = rig.server
        m = await s.mention("sophia hello")
        await rig.settle()
        posts = s.channel_posts(s.general_id)
        assert len(posts) == 1 and "isn't enabled" in posts[0]["content"]
        assert posts[0]["allowed_mentions"]["parse"] == [] and posts[0]["message_reference"]["message_id"] in (m["id"], int(m["id"]))
        assert task_count(rig) == 0 and not executions(s)


def followups(server: DiscordServer, payload: dict[str, Any]) -> list[Any]:
    return [r for r in server.of(EXECUTE) if r.path.split("/")[2] == str(server.application_id)
            and r.path.split("/")[3] == payload["token"]]


async def test_personas_memory_and_forget_answer_privately_and_forget_is_for_admins(rig: Rig) -> None:
    s = rig.server
    p = await s.slash_command("personas", {"name": "karen"})
    await s.wait_for(lambda: s.callbacks_for(p))
    cb = s.callbacks_for(p)[0]
    assert cb.data["flags"] & 64 and "Karen" in cb.data["content"]

    await s.mention("sophia what is churn?")
    await rig.settle()
    mem = await s.slash_command("memory")
    await s.wait_for(lambda: followups(s, mem))
    assert s.callbacks_for(mem)[0].type == 5  # deferred, then the list
    assert "remembers 1 thread" in followups(s, mem)[0]["content"] and followups(s, mem)[0]["flags"] & 64

    refused = await s.slash_command("forget")  # alice: no admin role, no Manage Server
    await s.wait_for(lambda: s.callbacks_for(refused))
    assert "only admins" in s.callbacks_for(refused)[0].data["content"]
    assert len(await rig.engine.memory_list("discord", str(s.guild_id), str(s.general_id))) == 1

    done = await s.slash_command("forget", user=s.carol)  # carol has Manage Server
    await s.wait_for(lambda: followups(s, done))
    assert followups(s, done)[0]["content"].startswith("Done")
    assert await rig.engine.memory_list("discord", str(s.guild_id), str(s.general_id)) == []


async def test_a_configured_admin_role_may_forget(discord_server, tmp_path) -> None:
    s = discord_server
    role = s.add_role("Moderators")
    s.give_role(s.bob, role)
    assert not s.permissions_of(int(s.bob["id"])) & MANAGE_GUILD
    async for rig in make_rig(s, tmp_path, discord_admin_roles="moderators"):
        done = await s.slash_command("forget", user=s.bob)
        await s.wait_for(lambda done=done: followups(s, done))
        assert "nothing to forget" in followups(s, done)[0]["content"]


async def test_a_redelivered_mention_is_answered_once(rig: Rig) -> None:
    s = rig.server
    m = await s.mention("sophia once please")
    await rig.settle()
    count = len(executions(s))
    await s.gateway.dispatch("MESSAGE_CREATE", s.messages[int(m["id"])])  # as after a resume
    await rig.settle()
    assert len(executions(s)) == count and task_count(rig) == 1


async def test_investigate_inside_a_thread_opens_its_own_thread_in_the_parent_channel(rig: Rig) -> None:
    s = rig.server
    m = await s.mention("sophia hello")
    await rig.settle()
    payload = await s.slash_command("investigate", {"problem": "why is search slow?"}, channel_id=int(m["id"]))
    await rig.settle()
    assert f"<#{s.general_id}>" in s.callbacks_for(payload)[0].data["content"]
    root = next(p for p in executions(s) if "thread_id" not in p.query)
    assert root.path.split("/")[2] == executions(s)[0].path.split("/")[2]  # #general's webhook
    assert s.of("POST /channels/{channel_id}/messages/{message_id}/threads")[-1].path.split("/")[4] == root.response["id"]


async def test_investigate_in_a_dm_runs_there_and_a_dm_follow_up_continues_it(rig: Rig) -> None:
    s = rig.server
    dm_channel = int(s.dm_with(s.alice)["id"])
    await s.dm("hi")  # the DM channel exists in the client
    await rig.settle()
    payload = await s.slash_command("investigate", {"problem": "why did trials drop?"}, channel_id=dm_channel)
    await rig.settle()
    assert s.callbacks_for(payload)[0].type == 4
    posts = s.channel_posts(dm_channel)
    assert any("Investigation" in (p.get("content") or "") + str(p.get("embeds")) for p in posts)
    assert not executions(s) and not s.of("POST /channels/{channel_id}/messages/{message_id}/threads")
    async def investigation_turns() -> int:
        threads = await rig.engine.memory_list("discord", "dm", str(dm_channel))
        return max(t.turns for t in threads if t.kind.value == "investigation")

    before = await investigation_turns()
    await s.dm("we changed the signup form on Monday")
    await rig.settle()
    assert await investigation_turns() > before


async def test_many_mentions_at_once_make_one_webhook_and_placeholders_are_edited_into_answers(rig: Rig) -> None:
    s = rig.server
    s.slow("GET /guilds/{guild_id}/webhooks", 0.3)  # all eight ask for the webhook while the first looks
    mentions = await asyncio.gather(*(s.mention(f"sophia question number {i}") for i in range(8)))
    await rig.settle()
    # looked up once (the server's webhooks) and created once (the lock), then cached: discord.py
    # alone would queue the lookups per route, each finding the webhook the first one made
    assert len(s.of("GET /guilds/{guild_id}/webhooks")) == 1 and not s.of("GET /channels/{channel_id}/webhooks")
    assert len(s.of("POST /channels/{channel_id}/webhooks")) == 1
    for m in mentions:
        here = [p for p in executions(s) if p.query.get("thread_id") == m["id"]]
        edits = [e for e in s.of(EDIT) if e.query.get("thread_id") == m["id"]]
        # the placeholder went out first and became the answer (one message, edited)
        assert len(here) == 1 and len(edits) == 1
        assert edits[0].path.split("/")[-1] == here[0].response["id"]


async def test_after_a_restart_our_webhook_is_found_again_not_created_twice(discord_server, tmp_path) -> None:
    s = discord_server
    async for rig in make_rig(s, tmp_path):
        await s.mention("sophia one")
        await rig.settle()
    async for rig in make_rig(s, tmp_path):
        m = await s.mention("sophia two")
        await rig.settle()
        assert s.of("GET /guilds/{guild_id}/webhooks")
    assert len(s.of("POST /channels/{channel_id}/webhooks")) == 1
    hooks = {p.path.split("/")[2] for p in s.webhook_executions()}
    assert len(hooks) == 1 and any(p.query.get("thread_id") == m["id"] for p in s.webhook_executions())


async def test_investigate_completes_persona_names_from_the_live_registry(rig: Rig) -> None:
    """Autocomplete, not fixed choices: a persona added while the bot runs (Notion, /persona) is
    offered at once; a name typed past the list gets a clear private answer and starts nothing."""
    s = rig.server
    commands = {c["name"]: c for c in s.commands[None]}
    assert set(commands) == {"investigate", "crew", "personas", "memory", "forget", "persona"}
    persona = next(o for o in commands["investigate"]["options"] if o["name"] == "persona")
    assert persona.get("autocomplete") and not persona.get("required")

    typed = await s.slash_command("investigate", {"problem": "x", "persona": "so"}, focused="persona")
    await s.wait_for(lambda: s.callbacks_for(typed))
    cb = s.callbacks_for(typed)[0]
    assert cb.type == 8 and [c["value"] for c in cb.data["choices"]] == ["sophia"]

    rig.engine.personas.replace([*rig.engine.personas, rig.engine.personas["karen"].model_copy(
        update={"name": "zoe", "display_name": "Zoe"})])
    typed = await s.slash_command("investigate", {"problem": "x", "persona": "zo"}, focused="persona")
    await s.wait_for(lambda: s.callbacks_for(typed))
    assert [c["value"] for c in s.callbacks_for(typed)[0].data["choices"]] == ["zoe"]

    unknown = await s.slash_command("investigate", {"problem": "why?", "persona": "zelda @everyone"})
    await s.wait_for(lambda: s.callbacks_for(unknown))
    answer = s.callbacks_for(unknown)[0].data
    assert answer["flags"] & 64 and "don't know a persona called **zelda @everyone**" in answer["content"]
    assert answer["allowed_mentions"]["parse"] == []
    assert task_count(rig) == 0


async def test_a_reply_to_someone_elses_webhook_starts_nothing_and_makes_no_webhook(rig: Rig) -> None:
    s = rig.server
    other = await s.webhook_message("deploy finished", channel_id=s.general_id)
    await s.user_message("nice", reply_to=int(other["id"]))
    await rig.settle()
    assert task_count(rig) == 0 and not s.of("POST /channels/{channel_id}/webhooks") and not executions(s)


async def test_a_command_that_cannot_be_stored_is_answered_privately_to_try_again(rig: Rig) -> None:
    s = rig.server

    async def locked(task):  # the database is locked for a moment
        raise sqlite3.OperationalError("database is locked")

    rig.engine.submit = locked  # type: ignore[method-assign]
    payload = await s.slash_command("investigate", {"problem": "why is it slow?"})
    await s.wait_for(lambda: s.callbacks_for(payload))
    cb = s.callbacks_for(payload)[0]
    assert cb.data["flags"] & 64 and "try again" in cb.data["content"] and "locked" not in cb.data["content"]
    m = await s.mention("sophia hello")
    await rig.settle()
    said = s.channel_posts(s.general_id)
    assert len(said) == 1 and "try again" in said[0]["content"]
    assert said[0]["message_reference"]["message_id"] in (m["id"], int(m["id"]))
    assert task_count(rig) == 0 and not executions(s)


async def test_a_post_discord_refuses_is_logged_in_one_clear_line_and_the_task_fails_visibly(rig: Rig, caplog) -> None:
    s = rig.server
    s.fail("POST /webhooks/{webhook_id}/{webhook_token}", 403, 50001, "Missing Access", times=None)
    await s.mention("sophia hello")
    await rig.settle()
    lines = [r.getMessage() for r in caplog.records if "cannot post in channel" in r.getMessage()]
    assert lines and "Send Messages" in lines[0] and "test-bot-token" not in " ".join(lines)
    with sqlite3.connect(rig.db_path) as db:
        assert db.execute("SELECT status FROM tasks").fetchone()[0] == "failed"


async def test_a_429_is_waited_out_by_discord_py_and_the_post_lands(rig: Rig) -> None:
    s = rig.server
    s.rate_limit("POST /webhooks/{webhook_id}/{webhook_token}", times=1, retry_after=0.05)
    m = await s.mention("sophia hello")
    await rig.settle()
    assert any(r.status == 429 for r in s.of(EXECUTE, ok_only=False))
    assert [p for p in executions(s) if p.query.get("thread_id") == m["id"]]


def test_the_webhook_name_follows_discords_rules() -> None:
    async def fetch(_: int) -> None: ...

    assert ChannelWebhooks(None, WEBHOOK_NAME, fetch).webhook_name == "Orchestra"  # type: ignore[arg-type]
    for bad in ("", "x" * 81, "My Discord Bot", "clyde"):
        with pytest.raises(ValueError):
            ChannelWebhooks(None, bad, fetch)  # type: ignore[arg-type]


async def test_commands_and_clicks_hold_back_other_work_until_they_are_answered(rig: Rig) -> None:
    """Acknowledgements first (engine.intake): while an interaction is stored and answered, the
    engine starts no new work, so under a burst the answers do not queue behind other tasks."""
    s = rig.server
    owed: list[int] = []
    original = rig.engine.submit

    async def submit(task):
        owed.append(rig.engine.intake.owed)
        return await original(task)

    rig.engine.submit = submit  # type: ignore[method-assign]
    payload = await s.slash_command("investigate", {"problem": "why are refunds slow?"})
    await s.wait_for(lambda: s.callbacks_for(payload))
    await rig.settle()
    with_buttons = [p for p in posted_and_edited(s) if "orchestra:challenge:" in str(p.json.get("components"))]
    custom_id = next(c["custom_id"] for row in with_buttons[-1]["components"] for c in row["components"]
                     if c["custom_id"].startswith("orchestra:challenge:"))
    click = await s.click(int(with_buttons[-1].response["id"]), custom_id)
    await s.wait_for(lambda: s.callbacks_for(click))
    await rig.settle()
    assert owed == [1, 1]
    assert rig.engine.intake.owed == 0
