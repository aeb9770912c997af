"""The Discord adapter in the corners of issue 8, end to end (the real adapter, discord.py's real
client, the local Discord, the real engine on SQLite): threads the bot has not cached or that are
archived, /investigate with a persona, buttons after a restart, a thread archived between turns,
a persona name that is not one, DMs holding a conversation and an investigation, allowlists
naming a thread or its channel, replies to a persona outside her thread, a gateway drop before
on_ready, and a channel that takes no threads or webhooks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from tests.servers.discord_api import DiscordServer
from tests.test_discord import (
    EDIT,
    Rig,
    executions,
    make_rig,
    posted_and_edited,
    task_count,
)

pytest_plugins = ["tests.servers.fixtures"]

THREADS = "POST /channels/{channel_id}/messages/{message_id}/threads"


@pytest_asyncio.fixture
async def rig(discord_server: DiscordServer, tmp_path) -> AsyncIterator[Rig]:
    async for live in make_rig(discord_server, tmp_path):
        yield live


def said(server: DiscordServer) -> str:
    """Everything we posted or edited, as one string."""
    return " ".join(json.dumps(r.json) for r in posted_and_edited(server) + server.channel_posts())


def tasks(rig: Rig) -> list[dict[str, Any]]:
    import sqlite3

    with sqlite3.connect(rig.db_path) as db:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM tasks ORDER BY id")]


def buttons(server: DiscordServer) -> tuple[int, str, str]:
    """(message id, challenge custom id, thread id) of the last post that carries buttons."""
    post = [p for p in posted_and_edited(server) if "orchestra:challenge:" in str(p.json.get("components"))][-1]
    custom_id = next(c["custom_id"] for row in post["components"] for c in row["components"]
                     if c["custom_id"].startswith("orchestra:challenge:"))
    message_id = int(post.response["id"]) if post.method == "POST" else int(post.path.split("/")[-1])
    return message_id, custom_id, post.query.get("thread_id", "")


async def test_a_mention_in_a_thread_the_bot_has_not_cached_is_answered_in_that_thread(rig: Rig) -> None:
    """discord.py gives a message in a thread it has not cached a PartialMessageable: the task
    must still name the parent channel and the thread, and the answer go into that thread."""
    s = rig.server
    thread = s.add_thread(s.general_id, "made while the bot looked away")  # no THREAD_CREATE sent
    assert rig.client.get_channel(int(thread["id"])) is None
    await s.mention("sophia what is a cohort?", channel_id=int(thread["id"]))
    await rig.settle()
    [task] = tasks(rig)
    assert (task["channel"], task["thread"]) == (str(s.general_id), thread["id"])
    assert not s.of(THREADS)  # no thread made inside a thread
    posts = executions(s)
    assert posts and all(p.query.get("thread_id") == thread["id"] for p in posts)
    assert not s.of("POST /channels/{channel_id}/webhooks", ok_only=False)[1:]  # #general's one webhook


async def test_a_follow_up_in_an_archived_thread_continues_the_conversation(rig: Rig) -> None:
    """Archiving drops the thread from discord.py's cache; a person writing in it (no mention)
    still continues the conversation there, and the answer reopens the thread."""
    s = rig.server
    m = await s.mention("karen is the pricing page ready?")
    await rig.settle()
    s.archive_thread(int(m["id"]))
    await s.wait_for(lambda: rig.client.get_channel(int(m["id"])) is None)
    before = len(executions(s))
    await s.user_message("and what about the FAQ?", channel_id=int(m["id"]))
    await rig.settle()
    assert task_count(rig) == 2 and tasks(rig)[1]["channel"] == str(s.general_id)
    later = executions(s)[before:]
    assert later and all(p.query.get("thread_id") == m["id"] for p in later)
    assert {p["username"] for p in later} == {"Karen"}


async def test_investigate_with_a_persona_roots_names_the_problem_lead_and_cast(rig: Rig) -> None:
    s = rig.server
    await s.slash_command("investigate", {"problem": "why did enterprise renewals slip?", "persona": "karen"})
    await rig.settle()
    root = next(p for p in executions(s) if "thread_id" not in p.query)
    assert root["username"] == "Karen"
    text = json.dumps(root.json)
    assert "why did enterprise renewals slip?" in text and "Lead: Karen" in text and "Cast:" in text
    assert all(name in text for name in ("Sophia", "Cherry"))  # her cast, by name


async def test_buttons_posted_before_a_restart_work_with_the_new_client(discord_server, tmp_path) -> None:
    """A real restart: the first client is closed, a new one opens the same database; a click on
    a message the first one posted starts the challenge, once."""
    s = discord_server
    async for first in make_rig(s, tmp_path):
        await s.slash_command("investigate", {"problem": "why are refunds slow?"})
        await first.settle()
        message_id, custom_id, thread = buttons(s)
        assert task_count(first, "challenge") == 0
    async for second in make_rig(s, tmp_path):
        before = len(executions(s))
        click = await s.click(message_id, custom_id)
        again = await s.click(message_id, custom_id)
        await s.wait_for(lambda click=click, again=again: s.callbacks_for(click) and s.callbacks_for(again))
        await second.settle()
        assert s.callbacks_for(click)[0].type == 6
        assert task_count(second, "challenge") == 1
        assert any(p.query.get("thread_id") == thread for p in executions(s)[before:])
        taken = [e for e in s.of(EDIT) if e.path.split("/")[-1] == str(message_id) and e.json.get("components") == []]
        assert taken


async def test_a_thread_archived_between_turns_is_reopened_for_the_next_turn(rig: Rig) -> None:
    s = rig.server
    await s.slash_command("investigate", {"problem": "why do exports time out?"})
    await rig.settle()
    message_id, custom_id, thread = buttons(s)
    s.archive_thread(int(thread))
    await s.wait_for(lambda: rig.client.get_channel(int(thread)) is None)
    before = len(executions(s))
    await s.click(message_id, custom_id)
    await rig.settle()
    assert task_count(rig, "challenge") == 1
    assert {"archived": False} in [r.json for r in s.of("PATCH /channels/{channel_id}") if r.path.endswith(thread)]
    assert any(p.query.get("thread_id") == thread for p in executions(s)[before:])
    assert not s.channel_posts() and not any("is archived" in (p.get("content") or "") for p in executions(s))


async def test_a_name_followed_by_a_colon_that_is_no_persona_is_a_plain_question_as_on_slack(rig: Rig) -> None:
    """The engine reads only "@zelda" as asking for a persona it does not have (Slack's path
    too); "zelda: …" is an ordinary question: answered once, by the persona the topic picks."""
    s = rig.server
    m = await s.mention("zelda: what is our churn this quarter?")
    await rig.settle()
    assert "know a persona called" not in said(s)
    answers = [p for p in executions(s) if p.query.get("thread_id") == m["id"]]
    assert answers and len({p["username"] for p in answers}) == 1


async def test_a_dm_conversation_then_an_investigation_then_a_dm_message(rig: Rig) -> None:
    """A DM is one thread: after a conversation, /investigate there starts an investigation, and
    the next DM message goes to the investigation (the latest), the conversation kept."""
    s = rig.server
    dm = int(s.dm_with(s.alice)["id"])
    await s.dm("sophia what is a cohort?")
    await rig.settle()
    payload = await s.slash_command("investigate", {"problem": "why did trials drop?"}, channel_id=dm)
    await rig.settle()
    assert s.callbacks_for(payload)[0].type == 4
    assert "Investigation" in said(s)
    threads = await rig.engine.memory_list("discord", "dm", str(dm))
    assert sorted(t.kind.value for t in threads) == ["conversation", "investigation"]
    turns = {t.kind.value: t.turns for t in threads}
    await s.dm("we changed the signup form on Monday")
    await rig.settle()
    after = {t.kind.value: t.turns for t in await rig.engine.memory_list("discord", "dm", str(dm))}
    assert after["investigation"] > turns["investigation"] and after["conversation"] == turns["conversation"]
    assert not executions(s) and not s.of(THREADS)


async def test_allowed_channels_may_name_the_channel_or_one_of_its_threads(discord_server, tmp_path) -> None:
    s = discord_server
    thread = s.add_thread(s.general_id, "ops")
    other = s.add_thread(s.random_id, "elsewhere")
    async for live in make_rig(s, tmp_path, allowed_channels=[thread["id"], str(s.random_id)]):
        await s.mention("sophia in the allowed thread", channel_id=int(thread["id"]))
        await s.mention("sophia in a thread of the allowed channel", channel_id=int(other["id"]))
        refused = await s.mention("sophia in general itself")
        await live.settle()
        assert [t["thread"] for t in tasks(live)] == [thread["id"], other["id"]]
        assert [p.path.split("/")[2] for p in s.channel_posts()] == [str(s.general_id)]
        assert "isn't enabled" in s.channel_posts()[0]["content"] and refused["id"] in json.dumps(s.channel_posts()[0].json)


async def test_a_reply_in_the_channel_to_a_persona_post_goes_to_her(rig: Rig) -> None:
    """Not in a thread and no mention: a Discord reply to the root Karen posted in #general is
    taken (Discord sends the replied-to message along) and Karen answers, though the topic
    ("data") would have picked Sophia."""
    s = rig.server
    await s.slash_command("investigate", {"problem": "why did enterprise renewals slip?", "persona": "karen"})
    await rig.settle()
    root = next(p for p in executions(s) if "thread_id" not in p.query)
    before = len(executions(s))
    reply = await s.user_message("what does the data say about it?", reply_to=int(root.response["id"]))
    await rig.settle()
    assert tasks(rig)[-1]["reply_to"] == root.response["id"]
    answers = [p for p in executions(s)[before:] if p.query.get("thread_id") == reply["id"]]
    assert answers and {p["username"] for p in answers} == {"Karen"}


async def test_mentions_made_while_the_gateway_is_down_are_answered_once_after_the_resume(rig: Rig) -> None:
    """A lost connection: what Discord dispatched meanwhile comes with the RESUME, and an event
    delivered again after it (a duplicate) is not a second task. The drop comes within discord.py's
    guild_ready_timeout (before on_ready): still an ordinary drop, resumed."""
    s = rig.server
    first = await s.mention("sophia before the drop")
    await rig.settle()
    await s.gateway.drop(4000)
    during = await s.mention("karen while the connection is down")
    await s.wait_for(lambda: s.gateway.resumes, timeout=10)
    await s.gateway.wait_connected()
    await s.wait_for(lambda: task_count(rig) == 2, timeout=10)
    await rig.settle()
    await s.gateway.redeliver(s.gateway.last_seq("MESSAGE_CREATE"))
    await s.gateway.dispatch("MESSAGE_CREATE", s.messages[int(first["id"])])
    await rig.settle()
    assert len(s.gateway.identifies) == 1 and task_count(rig) == 2
    for m, name in ((first, "Sophia"), (during, "Karen")):
        here = [p for p in executions(s) if p.query.get("thread_id") == m["id"]]
        assert len(here) == 1 and here[0]["username"] == name  # the placeholder, edited into the answer


async def test_a_reply_arriving_without_the_replied_to_message_still_goes_to_her(rig: Rig) -> None:
    """Discord may leave `referenced_message` out ("the backend did not attempt to fetch it"):
    the adapter reads the message itself and Karen still answers."""
    from tests.servers import discord_payloads as wire

    s = rig.server
    await s.slash_command("investigate", {"problem": "why did enterprise renewals slip?", "persona": "karen"})
    await rig.settle()
    root = next(p for p in executions(s) if "thread_id" not in p.query)
    rig.client._connection._messages.clear()  # as after a restart: nothing cached
    before = len(executions(s))
    channel = s.channel(s.general_id)
    data = wire.message(wire.snowflake(), channel, s.alice, "what does the data say about it?",
                        author_member=s.member_of(int(s.alice["id"]), with_user=False),
                        reference={"message_id": int(root.response["id"])})
    s._store(channel, data)
    await s.gateway.dispatch("MESSAGE_CREATE", data)
    await rig.settle()
    assert s.of(f"GET /channels/{s.general_id}/messages/{root.response['id']}"), [r.path for r in s.requests[-5:]]
    answers = [p for p in executions(s)[before:] if p.query.get("thread_id") == data["id"]]
    assert answers and {p["username"] for p in answers} == {"Karen"}


async def test_a_mention_in_a_voice_channels_chat_is_answered_there(discord_server, tmp_path) -> None:
    """A channel where Discord refuses threads and webhooks (400 code 50024, as the local Discord
    answers for anything but a text channel): the answer goes into the channel itself, in the
    bot's name with the persona in bold, instead of failing."""
    s = discord_server
    voice = s.add_channel("lounge")
    voice.update(type=2, bitrate=64000, user_limit=0, rtc_region=None, video_quality_mode=1)
    async for live in make_rig(s, tmp_path):
        m = await s.mention("sophia what is a cohort?", channel_id=int(voice["id"]))
        await live.settle()
        refused = [r for r in s.of(THREADS, ok_only=False) if r.status == 400]
        assert refused and refused[0].response["code"] == 50024
        answers = s.channel_posts(int(voice["id"]))  # no webhook there either: as the bot
        assert answers and any("**Sophia**" in (r["content"] or "") for r in answers)
        assert tasks(live)[0]["channel"] == voice["id"] and tasks(live)[0]["thread"] == m["id"]
        assert not [m for m in s.messages_in(int(voice["id"])) if "is thinking" in json.dumps(m)]
