"""`/crew` and the crew hand-off button on Discord, end to end: discord.py's real client against
the local Discord, our listeners and outbox, the real engine on SQLite. What is checked is what
was stored (the task: kind, text, options, persona, thread) and what the person saw; the crew's
own posts (built as the engine's crew flow will post them) as embeds."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from adapters.discord.render import render_reply
from engine.models import Action, Reply, ReplyKind, TaskKind
from engine.personas import PersonaRegistry
from tests.servers.discord_api import DiscordServer
from tests.test_discord import EDIT, Rig, followups, make_rig, posted_and_edited

pytest_plugins = ["tests.servers.fixtures"]


@pytest_asyncio.fixture
async def rig(discord_server: DiscordServer, tmp_path) -> AsyncIterator[Rig]:
    async for live in make_rig(discord_server, tmp_path):
        yield live


def tasks(rig: Rig, kind: str | None = "crew") -> list[dict[str, Any]]:
    with sqlite3.connect(rig.db_path) as db:
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM tasks ORDER BY id")]
    return [b for b in bodies if kind is None or b["kind"] == kind]


# --- /crew ------------------------------------------------------------------------------------


async def test_crew_offers_domains_and_complexities_as_choices_and_personas_by_autocomplete(rig: Rig) -> None:
    s = rig.server
    [crew] = [c for c in s.commands[None] if c["name"] == "crew"]
    options = {o["name"]: o for o in crew["options"]}
    assert [c["value"] for c in options["domain"]["choices"]] == ["sales", "marketing", "project", "research", "data", "content", "general"]
    assert [c["value"] for c in options["complexity"]["choices"]] == ["low", "medium", "high"]
    assert options["persona"].get("autocomplete") and not any(o.get("required") for o in crew["options"])
    typed = await s.slash_command("crew", {"text": "x", "persona": "kar"}, focused="persona")
    await s.wait_for(lambda: s.callbacks_for(typed))
    assert [c["value"] for c in s.callbacks_for(typed)[0].data["choices"]] == ["karen"]


async def test_crew_defers_stores_the_crew_task_and_confirms_privately(rig: Rig) -> None:
    s = rig.server
    payload = await s.slash_command("crew", {"text": "grow the Q3 pipeline", "domain": "sales", "complexity": "high", "persona": "Karen"})
    await s.wait_for(lambda: followups(s, payload))
    await rig.settle()
    [task] = tasks(rig)
    assert task["text"] == "grow the Q3 pipeline" and task["options"] == {"domain": "sales", "complexity": "high"}
    assert task["persona"] == "karen" and task["thread"] is None and task["channel"] == str(s.general_id)
    assert task["event_id"] == f"interaction:{payload['id']}"
    deferred = s.callbacks_for(payload)[0]
    assert deferred.type == 5 and deferred.data["flags"] & 64  # deferred, privately
    [said] = followups(s, payload)
    assert said["flags"] & 64 and "Assembling a crew (sales, high complexity)" in said["content"]
    assert "grow the Q3 pipeline" in said["content"]


async def test_options_typed_in_the_text_count_when_none_was_picked(rig: Rig) -> None:
    s = rig.server
    payload = await s.slash_command("crew", {"text": "research low: sophia, why do trials churn?"})
    await s.wait_for(lambda: followups(s, payload))
    [task] = tasks(rig)
    assert task["text"] == "sophia, why do trials churn?" and task["options"] == {"domain": "research", "complexity": "low"}


async def test_crew_inside_a_thread_opens_its_own_thread_in_the_parent_channel(rig: Rig) -> None:
    s = rig.server
    m = await s.mention("sophia hello")
    await rig.settle()
    payload = await s.slash_command("crew", {"text": "map the churn drivers"}, channel_id=int(m["id"]))
    await s.wait_for(lambda: followups(s, payload))
    [task] = tasks(rig)
    assert task["thread"] is None and task["channel"] == str(s.general_id)
    assert f"<#{s.general_id}>" in followups(s, payload)[0]["content"]


async def test_a_bad_option_or_no_work_is_answered_privately_at_once_and_nothing_starts(rig: Rig) -> None:
    s = rig.server
    cases = [
        ({"text": "domain=astrology what do the stars say?"}, "astrology"),
        ({"text": "sales marketing: both?"}, "once"),
        ({"text": "plan it", "persona": "zelda @everyone"}, "don't know a persona called **zelda @everyone**"),
        ({}, "Start a crew"),  # no text outside an investigation's thread: how to ask
        ({"text": "high:"}, "Start a crew"),
    ]
    for options, expected in cases:
        payload = await s.slash_command("crew", options)
        await s.wait_for(lambda payload=payload: s.callbacks_for(payload))
        cb = s.callbacks_for(payload)[0]
        assert cb.type == 4 and cb.data["flags"] & 64, options  # answered at once, privately
        assert expected in cb.data["content"], (options, cb.data["content"])
        assert "Error" not in cb.data["content"] and "Traceback" not in cb.data["content"]
    await rig.settle()
    assert tasks(rig, None) == []


async def test_crew_without_text_in_a_thread_hands_that_thread_over(rig: Rig) -> None:
    s = rig.server
    m = await s.mention("sophia hello")
    await rig.settle()
    payload = await s.slash_command("crew", {}, channel_id=int(m["id"]))
    await s.wait_for(lambda: followups(s, payload))
    [task] = tasks(rig)
    assert task["text"] == "" and task["thread"] == str(m["id"]) and task["options"] == {}
    assert "Handing this thread's plan" in followups(s, payload)[0]["content"]


# --- the hand-off button ----------------------------------------------------------------------


async def post_plan(rig: Rig) -> tuple[int, str, str]:
    """An investigation, then a planner turn in its thread offering the crew button: (message id,
    the button's custom id, the thread)."""
    s = rig.server
    await s.slash_command("investigate", {"problem": "why are refunds slow?"})
    await rig.settle()
    post = [p for p in posted_and_edited(s) if p.json.get("components")][-1]
    investigation = next(c["custom_id"] for row in post["components"] for c in row["components"]).split(":")[2]
    thread = post.query["thread_id"]
    reply = Reply(
        kind=ReplyKind.TURN, voice=rig.engine.personas["cherry"].voice, platform="discord", workspace=str(s.guild_id),
        channel=str(s.general_id), thread=thread, text="Cherry · planner\nPhase 1: confirm.", title="Cherry · planner",
        mode="planner", investigation_id=investigation, key="turn:crew-test:1",
        actions=[Action(kind=TaskKind.CREW, label="Hand to a crew", investigation_id=investigation)],
    )
    posted = await rig.outbox.post(reply)
    return int(posted.message_id), f"orchestra:crew:{investigation}", thread


async def test_the_crew_button_hands_the_plan_over_once_on_a_double_click(rig: Rig) -> None:
    s = rig.server
    message_id, custom_id, thread = await post_plan(rig)
    [button] = [c for row in s.messages[message_id]["components"] for c in row["components"]]
    assert button["custom_id"] == custom_id and button["label"] == "Hand to a crew" and button["style"] == 3
    first = await s.click(message_id, custom_id)
    second = await s.click(message_id, custom_id)
    await s.wait_for(lambda: s.callbacks_for(first) and s.callbacks_for(second))
    await rig.settle()
    [task] = tasks(rig)
    assert task["text"] == "" and task["thread"] == thread and task["message_id"] == str(message_id)
    assert s.callbacks_for(first)[0].type == 6
    edits = [e for e in s.of(EDIT) if e.path.split("/")[-1] == str(message_id) and e.json.get("components") == []]
    assert edits and "Hand to a crew requested by" in edits[-1]["content"]


async def test_a_crew_button_posted_before_a_restart_works_with_the_new_client_once(discord_server, tmp_path) -> None:
    s = discord_server
    async for first in make_rig(s, tmp_path):
        message_id, custom_id, thread = await post_plan(first)
    async for second in make_rig(s, tmp_path):
        click = await s.click(message_id, custom_id)
        again = await s.click(message_id, custom_id)
        await s.wait_for(lambda: s.callbacks_for(click) and s.callbacks_for(again))
        await second.settle()
        [task] = tasks(second)
        assert task["thread"] == thread and task["text"] == ""
        assert s.callbacks_for(click)[0].type == 6


# --- the crew's posts as embeds ---------------------------------------------------------------

VOICE = PersonaRegistry.defaults()["karen"].voice


def shown(mode: str, content: dict[str, Any], text: str = "the whole text") -> str:
    reply = Reply(kind=ReplyKind.TURN, voice=VOICE, platform="discord", workspace="1", channel="2", thread="3",
                  text=text, mode=mode, content=content, key=f"turn:x:{mode}")
    out = []
    for post in render_reply(reply, as_webhook=True):
        for e in post.embeds:
            out += [e.title or "", e.description or ""] + [f"{f.name}\n{f.value}" for f in e.fields] + [e.footer.text or ""]
    return "\n".join(out)


def test_the_crew_plan_shows_her_review_the_team_and_the_numbered_tasks() -> None:
    text = shown("crew-plan", {
        "review": "A sound split @everyone; keep the pricing check first.",
        "agents": [{"role": "Senior sales lead", "seniority": "senior", "domain": "sales", "goal": "grow Q3"}, "Data helper"],
        "tasks": [{"description": "Audit the pipeline", "agent": "Senior sales lead"}, "Draft the campaign"],
    })
    assert "keep the pricing check first" in text and "@everyone" not in text  # neutralised
    assert "👥 The crew\n• **Senior sales lead** (senior, sales): grow Q3\n• **Data helper**" in text
    assert "📋 Tasks\n1. Audit the pipeline → *Senior sales lead*\n2. Draft the campaign" in text
    assert "Crew plan" in text and "the whole text" not in text


def test_progress_result_and_review_render_as_short_embeds() -> None:
    progress = shown("crew-progress", {"agent": "Senior sales lead", "task": "Audit the pipeline", "status": "started"})
    assert "⏳ **Senior sales lead** is working on: Audit the pipeline" in progress
    done = shown("crew-progress", {"agent": "Senior sales lead", "task": "Audit the pipeline", "status": "done"})
    assert "✅ **Senior sales lead** finished: Audit the pipeline" in done
    result = shown("crew-result", {"result": "Three levers.", "usage": {"prompt_tokens": 1234, "completion_tokens": 5, "total_tokens": 1239}})
    assert "📦 Result\nThree levers." in result and "📊 Tokens: 1,234 in · 5 out · 1,239 in all" in result
    review = shown("crew-review", {"review": "Thin on pricing.", "verdict": "accept with changes"})
    assert "⚖️ Verdict\naccept with changes" in review and "Thin on pricing." in review


def test_crew_content_of_another_shape_falls_back_to_the_text() -> None:
    plan = shown("crew-plan", {"agents": None, "tasks": None}, text="Karen reviewed the plan.")
    assert "Karen reviewed the plan." in plan and "Crew plan" in plan  # the footer names the mode in words
    progress = shown("crew-progress", {"status": "started"}, text="Karen is at it.")
    assert "Karen is at it." in progress and "Crew at work" in progress
