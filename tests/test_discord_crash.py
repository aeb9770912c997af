"""Crash tests through Discord: a real `orchestra` process (DISCORD_TOKEN, DISCORD_API_URL and
DISCORD_GATEWAY_URL pointed at the local Discord running in this test process) is killed with
SIGKILL at chosen moments and started again on the same database.

Discord never sends a message again to a new gateway session, so whatever was accepted before the
kill must come back from SQLite, and what was posted while the process was down is read from the
channels' history after the restart (adapters/discord/catch_up.py). After the restart, what the
local Discord shows people must be right: every mention answered exactly once (recognised by the key in the last embed's footer), no
"is thinking" placeholder left standing, no investigation paused without its notice, the
person's message stored once, no task left unfinished.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
import pytest_asyncio

from tests.crash_rig import Model, Orchestra, Sent
from tests.discord_crash_rig import DiscordOrchestra, key_of, last_buttons, thinking
from tests.servers.discord_api import DiscordServer


@pytest_asyncio.fixture
async def stand_ins():
    discord = await DiscordServer(heartbeat_interval=1000).start()
    model = await Model().start()
    yield discord, model
    Orchestra.kill_leftovers()
    await model.stop()
    await discord.stop()
    assert not discord.errors, f"the local Discord failed while answering: {discord.errors!r}"


def assert_clean(rig: DiscordOrchestra) -> None:
    figures = rig.audit()
    assert figures.clean(), figures.problems


async def test_killed_after_the_mention_is_stored_it_is_answered_after_the_restart(stand_ins, tmp_path) -> None:
    """The mention is in SQLite and the model is asked (it hangs): kill. Discord will not send the
    mention to the next session; the restarted process answers it from the database, once, and
    the placeholder it had shown becomes the answer."""
    discord, model = stand_ins
    model.hang_on = {1}
    rig = DiscordOrchestra(tmp_path, discord, model)
    await rig.start()
    sent = await rig.mention("sophia, why did signups drop last week?")
    await discord.wait_for(lambda: len(model.requests) == 1, timeout=30)
    await rig.kill()

    model.hang_on = set()
    await rig.start()
    await rig.settle(expected_tasks=1)
    await rig.stop()
    assert len(discord.gateway.identifies) == 2  # a new session, nothing replayed to it
    in_thread = [m for m in rig.shown() if m["channel_id"] == sent.ts]
    assert in_thread and not any(thinking(m) for m in in_thread)
    assert_clean(rig)


async def test_a_mention_killed_right_after_its_post_is_not_answered_twice(stand_ins, tmp_path) -> None:
    """Discord took the answer, the process died before recording it: the restarted process
    finds the post by the key in its embed footer (reading the thread), and posts nothing new."""
    discord, model = stand_ins
    rig = DiscordOrchestra(tmp_path, discord, model)
    await rig.start(crash_at="posted")
    sent = await rig.mention("karen, is the pricing page ready?")
    await rig.died()
    answers_before = [m for m in rig.shown() if m["channel_id"] == sent.ts and (key_of(m) or "").startswith("turn:")]
    assert len(answers_before) == 1

    reads = len(discord.of("GET /channels/{channel_id}/messages"))
    await rig.start()
    await rig.settle(expected_tasks=1)
    await rig.stop()
    assert len(discord.of("GET /channels/{channel_id}/messages")) > reads  # it looked before posting
    assert_clean(rig)


async def test_killed_while_the_model_thinks_the_placeholder_is_edited_not_left(stand_ins, tmp_path) -> None:
    """A placeholder is up, then the kill: the restarted process edits that same message into
    the answer (nothing is left "thinking", nothing posted beside it)."""
    discord, model = stand_ins
    model.hang_on = {1}
    rig = DiscordOrchestra(tmp_path, discord, model)
    await rig.start()
    sent = await rig.mention("cherry, what should we do first?")
    await discord.wait_for(lambda: len(model.requests) == 1
                           and any(thinking(m) for m in rig.shown() if m["channel_id"] == sent.ts), timeout=30)
    [placeholder] = [m for m in rig.shown() if m["channel_id"] == sent.ts]
    await rig.kill()

    model.hang_on = set()
    await rig.start()
    await rig.settle(expected_tasks=1)
    await rig.stop()
    in_thread = [m for m in rig.shown() if m["channel_id"] == sent.ts]
    assert [m["id"] for m in in_thread] == [placeholder["id"]]  # edited in place
    assert_clean(rig)


async def test_an_investigation_killed_after_its_first_turn_goes_on_without_repeats(stand_ins, tmp_path) -> None:
    """Mid-investigation: the root and the first turn are posted, the second model call hangs:
    kill, restart; it finishes, nothing posted twice, the problem stored once."""
    discord, model = stand_ins
    model.hang_on = {2}
    rig = DiscordOrchestra(tmp_path, discord, model, ORCHESTRA_MAX_AUTO_TURNS="2")
    await rig.start()
    await rig.investigate("intermittent 401s on checkout since Tuesday")
    await discord.wait_for(lambda: len(model.requests) == 2, timeout=30)
    await rig.kill()

    model.hang_on = set()
    await rig.start()
    await rig.settle(expected_tasks=1)
    await rig.stop()
    assert_clean(rig)
    assert len(model.requests) == 3  # turns 1 and 2 once each, and the interrupted one once more


@pytest.mark.parametrize("point", ["posted", "posted:3", "placeholder_posted", "placeholder_posted:2",
                                   "notice_posted", "turn_posted:1"])
async def test_an_investigation_killed_at_a_crash_point_loses_nothing(stand_ins, tmp_path, point) -> None:
    """The moments nothing outside can see: after Discord took a post but before it was recorded;
    after a placeholder went up but before it was recorded; after a pause notice, before the
    pause was stored; after a turn's posts, before its state."""
    discord, model = stand_ins
    rig = DiscordOrchestra(tmp_path, discord, model, ORCHESTRA_MAX_AUTO_TURNS="2")
    await rig.start(crash_at=point)
    await rig.investigate("why do exports time out for big accounts?")
    await rig.died()

    await rig.start()
    await rig.settle(expected_tasks=1)
    await rig.stop()
    assert_clean(rig)


@pytest.mark.parametrize("point", ["placeholder_posted", "posted"])
async def test_a_mention_killed_at_a_crash_point_is_answered_once(stand_ins, tmp_path, point) -> None:
    discord, model = stand_ins
    rig = DiscordOrchestra(tmp_path, discord, model)
    await rig.start(crash_at=point)
    await rig.mention("sophia, what is our churn this quarter?")
    await rig.died()

    await rig.start()
    await rig.settle(expected_tasks=1)
    await rig.stop()
    assert_clean(rig)


async def test_killed_right_after_investigate_is_acknowledged_it_still_runs(stand_ins, tmp_path) -> None:
    """Discord shows the person "Starting an investigation", then the process dies at once:
    the command was stored before that answer went out, so the restart runs it."""
    discord, model = stand_ins
    rig = DiscordOrchestra(tmp_path, discord, model, ORCHESTRA_MAX_AUTO_TURNS="1")
    model.hang_on = {1, 2, 3}  # nothing gets further than the acknowledgement before the kill
    await rig.start()
    await rig.investigate("checkout latency doubled overnight")
    await rig.kill()
    assert rig.stored() == 1

    model.hang_on = set()
    await rig.start()
    await rig.settle(expected_tasks=1)
    await rig.stop()
    assert_clean(rig)


@pytest.mark.parametrize("point", ["placeholder_posted", "posted"])
async def test_a_dm_killed_at_a_crash_point_is_answered_once(stand_ins, tmp_path, point) -> None:
    """DMs have no webhooks and no threads: the posts are the bot's own in the DM channel, and
    after the restart they are found there by their key."""
    discord, model = stand_ins
    rig = DiscordOrchestra(tmp_path, discord, model)
    await rig.start(crash_at=point)
    sent = await rig.dm("sophia, what is a cohort?")
    await rig.died()

    await rig.start()
    await rig.settle(expected_tasks=1)
    await rig.stop()
    assert_clean(rig)
    assert [m for m in rig.shown() if m["channel_id"] == sent.ts and (key_of(m) or "").startswith("turn:")]


async def test_a_button_posted_before_a_kill_works_in_the_next_process_even_if_killed_again(stand_ins, tmp_path) -> None:
    """The first process posts an investigation's turn with its buttons and is killed. The next
    one takes a click on that message (stored, then acknowledged), and is killed while the model
    works on the challenge. The third finishes it: one challenge, nothing doubled."""
    discord, model = stand_ins
    rig = DiscordOrchestra(tmp_path, discord, model, ORCHESTRA_MAX_AUTO_TURNS="1")
    await rig.start()
    await rig.investigate("why did nightly exports fail twice?")
    await rig.settle(expected_tasks=1)
    await rig.kill()
    message_id, custom_id = last_buttons(rig)
    turns_before = {k for m in rig.shown() if (k := key_of(m)) and k.startswith("turn:")}

    await rig.start()
    model.hang_on = {len(model.requests) + 1}
    click = await discord.click(message_id, custom_id)
    await discord.wait_for(lambda: discord.callbacks_for(click) and len(model.requests) == model.hang_on.copy().pop(),
                           timeout=30)
    assert discord.callbacks_for(click)[0].type == 6
    await rig.kill()

    model.hang_on = set()
    await rig.start()
    await rig.settle(expected_tasks=2)
    await rig.stop()
    with sqlite3.connect(rig.db) as con:
        kinds = [k for (k,) in con.execute("SELECT json_extract(body, '$.kind') FROM tasks ORDER BY id")]
    assert kinds == ["investigate", "challenge"]
    turns_after = {k for m in rig.shown() if (k := key_of(m)) and k.startswith("turn:")}
    assert turns_after - turns_before  # the challenge's turn
    assert_clean(rig)


async def test_killed_between_the_root_post_and_its_thread_the_restart_makes_the_thread_once(stand_ins, tmp_path) -> None:
    """The root is in the channel, the thread is being made from it (Discord is slow to answer):
    kill. The restart finds the root by its key, makes the thread from it and runs the turns
    inside; one root, one thread."""
    discord, model = stand_ins
    threads = "POST /channels/{channel_id}/messages/{message_id}/threads"
    discord.slow(threads, 60, times=1)
    rig = DiscordOrchestra(tmp_path, discord, model, ORCHESTRA_MAX_AUTO_TURNS="1")
    await rig.start()
    sent = await rig.investigate("search results went stale after the reindex")
    await discord.wait_for(lambda: discord.of(threads, ok_only=False), timeout=30)
    await rig.kill()

    await rig.start()
    await rig.settle(expected_tasks=1)
    await rig.stop()
    assert_clean(rig)
    [root] = [m for m in rig.shown() if (key_of(m) or "").startswith("root:") and sent.text in json.dumps(m)]
    made = [r for r in discord.of(threads) if r.path.split("/")[4] == root["id"] and r.status == 200]
    assert len(made) == 1 and int(root["id"]) in discord.channels
    assert [m for m in rig.shown() if m["channel_id"] == root["id"] and (key_of(m) or "").startswith("turn:")]


async def test_a_mention_and_a_thread_reply_posted_while_it_was_down_are_answered_once_after_the_restart(
        stand_ins, tmp_path) -> None:
    """Killed while the model works on a second mention; while it is down, someone mentions it
    and someone replies in the first mention's thread (Discord keeps both in the history, and
    sends neither to the next session). The restart finishes the interrupted one and reads the
    two from the history: each answered once, nothing doubled, nothing left thinking."""
    discord, model = stand_ins
    rig = DiscordOrchestra(tmp_path, discord, model)
    await rig.start()
    first = await rig.mention("sophia, why did signups drop last week?")
    await rig.settle(expected_tasks=1)
    model.hang_on = {len(model.requests) + 1}
    await rig.mention("karen, is the pricing page ready?")
    await discord.wait_for(lambda: len(model.requests) == model.hang_on.copy().pop(), timeout=30)
    await rig.kill()
    answered_first = [m for m in rig.shown() if m["channel_id"] == first.ts and (key_of(m) or "").startswith("turn:")]

    model.hang_on = set()
    text = "cherry, what should we do first?"
    down = discord.create_message(discord.general_id, discord.alice, {"content": f"<@{discord.bot_id}> {text}"},
                                  dispatch=False)
    rig.sent.append(Sent("mention", text, down["id"]))  # the audit wants it answered in its thread, once
    reply = discord.create_message(int(first.ts), discord.alice, {"content": "and what about last month?"},
                                   dispatch=False)
    await rig.start()
    await rig.settle(expected_tasks=4)
    await rig.stop()
    assert len(discord.gateway.identifies) == 2  # a new session, nothing replayed to it
    assert_clean(rig)
    assert "Discord: caught up on" in rig.logs[-1] and "2 new task(s)" in rig.logs[-1]
    with sqlite3.connect(rig.db) as con:
        events = [e for (e,) in con.execute("SELECT event_id FROM tasks ORDER BY id")]
        [(reply_task,)] = con.execute("SELECT id FROM tasks WHERE event_id = ?", (f"message:{reply['id']}",)).fetchall()
        [(answered_reply,)] = con.execute("SELECT count(*) FROM turns AS t JOIN threads AS th ON th.id = t.thread_id "
                                          "WHERE t.task_id = ? AND t.role = 'persona' AND th.thread = ?",
                                          (reply_task, first.ts)).fetchall()
    assert len(events) == len(set(events)) == 4
    assert answered_reply == 1  # the reply continued the first conversation, once
    in_first = [m for m in rig.shown() if m["channel_id"] == first.ts and (key_of(m) or "").startswith("turn:")]
    assert len(in_first) == len(answered_first) + 1
