"""The Slack adapter, as Slack drives it: signed requests into the Bolt app, the Web API client
pointed at a local recording server, and a small in-memory engine that records what it was
asked and answers through the adapter's outbox.

What is checked is what Slack would see: which channel and thread, whose name and icon, which
blocks; and what the engine was handed: the `Task`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from adapters.slack import SlackAdapter
from adapters.slack.blocks import MAX_BLOCKS, MAX_SECTION_CHARS, MAX_TEXT_CHARS
from adapters.slack.pacing import ChannelPacer
from adapters.slack.translate import RecentClicks
from bot.settings import Settings
from engine.memory.records import ForgetResult, Phase, ThreadKind, ThreadStatus, ThreadSummary
from engine.models import Accepted, Action, Reply, ReplyKind, Task, TaskKind
from engine.personas import PersonaRegistry
from tests.servers.slack_api import (
    BOT_USER,
    TEAM,
    SlackApiServer,
    block_action_payload,
    command_payload,
    event_envelope,
    form_body,
    interaction_body,
    mention_event,
    message_event,
    signed_headers,
    socket_envelope,
)

SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-0000-secret-bot-token"
APP_TOKEN = "xapp-1-secret-app-token"
ADMIN = "U0ADMIN"


# --- a small in-memory engine -----------------------------------------------------------------


class FakeEngine:
    """The engine's adapter-facing API, in memory. Answers each task through the outbox:
    a named persona, or the domain route; an INVESTIGATE task first gets a ROOT post."""

    def __init__(self) -> None:
        self.personas = PersonaRegistry.defaults()
        self.tasks: list[Task] = []
        self.outboxes: dict[str, Any] = {}
        self.known_threads: set[tuple[str, str, str, str]] = set()
        self.summaries: list[ThreadSummary] = []
        self.forgotten: list[tuple[str, str, str]] = []
        self.answer_with: str | None = None  # None: echo the task's text
        self.reply_actions = False
        self._seen: dict[tuple[str, str, str], int] = {}
        self._jobs: set[asyncio.Task] = set()
        self._ids = itertools.count(1)

    def register_outbox(self, platform: str, outbox: Any) -> None:
        self.outboxes[platform] = outbox

    async def submit(self, task: Task) -> Accepted:
        key = (task.platform, task.workspace, task.event_id)
        if key in self._seen:
            return Accepted(task_id=self._seen[key], duplicate=True)
        task_id = self._seen[key] = next(self._ids)
        self.tasks.append(task)
        job = asyncio.create_task(self._answer(task))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return Accepted(task_id=task_id)

    async def _answer(self, task: Task) -> None:
        named, rest = self.personas.split_addressee(task.text)
        persona = named or self.personas[self.personas.route_by_domain(rest).persona]
        outbox = self.outboxes[task.platform]
        common = dict(voice=persona.voice, platform=task.platform, workspace=task.workspace, channel=task.channel)
        thread = task.thread
        if task.kind is TaskKind.INVESTIGATE:
            root = await outbox.post(Reply(kind=ReplyKind.ROOT, thread=None, text=f"Investigation inv-1: {rest}", title=rest, **common))
            thread = root.thread
        assert thread is not None
        self.known_threads.add((task.platform, task.workspace, task.channel, thread))
        placeholder = await outbox.working(persona.voice, task.channel, thread)
        text = self.answer_with if self.answer_with is not None else f"{persona.display_name} on: {rest}"
        actions = [Action(kind=TaskKind.CHALLENGE, label="Challenge", investigation_id="inv-1")] if self.reply_actions else []
        await outbox.post(Reply(kind=ReplyKind.ANSWER, thread=thread, text=text, actions=actions, **common), replace=placeholder)

    async def is_known_thread(self, platform: str, workspace: str, channel: str, thread: str) -> bool:
        return (platform, workspace, channel, thread) in self.known_threads

    async def wait_idle(self) -> None:
        while self._jobs:
            await asyncio.gather(*list(self._jobs), return_exceptions=True)

    async def memory_list(self, platform: str, workspace: str, channel: str) -> list[ThreadSummary]:
        return list(self.summaries)

    async def memory_forget(self, platform: str, workspace: str, channel: str) -> ForgetResult:
        self.forgotten.append((platform, workspace, channel))
        return ForgetResult(threads=2, turns=7, tasks=9)

    def persona_card(self, name: str) -> str | None:
        p = self.personas.get(name)
        return None if p is None else f"{p.display_name}: {p.role}"

    def personas_overview(self) -> str:
        return "\n".join(f"{p.display_name}: {p.role}" for p in self.personas)


# --- the rig: adapter + engine + local Slack --------------------------------------------------


def make_settings(api: SlackApiServer, tmp: Path, **extra: Any) -> Settings:
    return Settings(
        _env_file=None,
        db=tmp / "orchestra.db",
        slack_bot_token=BOT_TOKEN,
        slack_app_token=APP_TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=api.api_url.rstrip("/"),  # without the slash: the adapter adds it
        slack_admins=[ADMIN],
        **extra,
    )


async def settle(engine: Any, adapter: Any = None) -> None:
    """Wait for what runs after the acks (posts, respond()) and the engine's work to finish."""
    for _ in range(50):
        busy = bool(adapter is not None and adapter.listeners._after_ack) or bool(getattr(engine, "_jobs", None))
        if adapter is not None:
            await adapter.listeners.idle()
        await engine.wait_idle()
        if not busy:
            await asyncio.sleep(0.01)
            if not (adapter is not None and adapter.listeners._after_ack) and not getattr(engine, "_jobs", None):
                return


@dataclass
class Rig:
    api: SlackApiServer
    engine: Any
    adapter: SlackAdapter

    async def dispatch(self, body: str, headers: dict[str, str]) -> BoltResponse:
        return await self.adapter.app.async_dispatch(AsyncBoltRequest(body=body, headers=headers))

    async def event(self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None) -> BoltResponse:
        body = json.dumps(event_envelope(event, event_id=event_id))
        headers = signed_headers(SECRET, body, content_type="application/json", retry_num=retry_num)
        return await self.dispatch(body, headers)

    async def command(self, name: str, text: str = "", **kw: Any) -> tuple[BoltResponse, str]:
        kw.setdefault("response_url", self.api.response_url())
        fields = command_payload(name, text, **kw)
        body = form_body(fields)
        response = await self.dispatch(body, signed_headers(SECRET, body, content_type="application/x-www-form-urlencoded"))
        return response, fields["response_url"].rsplit("/", 1)[1]

    async def click(self, action_id: str, value: str, **kw: Any) -> BoltResponse:
        kw.setdefault("response_url", self.api.response_url())
        body = interaction_body(block_action_payload(action_id, value, **kw))
        return await self.dispatch(body, signed_headers(SECRET, body, content_type="application/x-www-form-urlencoded"))

    async def settle(self) -> None:
        await settle(self.engine, self.adapter)

    def responses(self, rid: str) -> list[dict[str, Any]]:
        return [r for r in self.api.responses if r["_id"] == rid]


@pytest_asyncio.fixture
async def slack_api():
    server = await SlackApiServer().start()
    yield server
    await server.stop()


async def build_rig(api: SlackApiServer, tmp: Path, engine: Any = None, **settings: Any) -> Rig:
    engine = engine or FakeEngine()
    fast = ChannelPacer(rate=1000, burst=1000)  # pacing has its own tests
    adapter = SlackAdapter(make_settings(api, tmp, **settings), engine, pacer=fast)
    engine.register_outbox("slack", adapter.outbox)
    return Rig(api, engine, adapter)


@pytest_asyncio.fixture
async def rig(slack_api, tmp_path):
    rig = await build_rig(slack_api, tmp_path)
    yield rig
    await rig.settle()
    await rig.adapter.stop()


def visible_text(call: Any) -> str:
    return "\n".join(call.block_texts())


# --- mentions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "said, persona",
    [("sophia why did sign-ups drop?", "Sophia"), ("Sophia, why did sign-ups drop?", "Sophia"), ("karen: launch plan?", "Karen"), ("CHERRY - thoughts?", "Cherry")],
)
async def test_a_mention_names_a_persona_in_any_case_and_she_answers_in_the_thread(rig: Rig, said: str, persona: str) -> None:
    event = mention_event(said)
    response = await rig.event(event)
    assert response.status == 200
    await rig.settle()

    [task] = rig.engine.tasks
    assert task.text == said  # only the <@BOT> mention is removed: the engine reads the name
    assert (task.kind, task.channel, task.user, task.workspace) == (TaskKind.MESSAGE, "C0GENERAL", "U0ALICE", TEAM)
    assert task.thread == event["ts"] and task.message_id == event["ts"]
    assert task.event_id == f"C0GENERAL:{event['ts']}"

    [placeholder] = rig.api.posts()
    assert placeholder["thread_ts"] == event["ts"]
    assert placeholder["username"] == persona
    assert placeholder["icon_emoji"] == rig.engine.personas[persona].avatar.emoji
    assert "thinking" in placeholder["text"]
    [update] = rig.api.of("chat.update")
    assert update["ts"] == placeholder.response["ts"] and update["channel"] == "C0GENERAL"
    assert f"{persona} on:" in visible_text(update)


async def test_a_mention_without_a_name_goes_where_the_domain_router_sends_it(rig: Rig) -> None:
    await rig.event(mention_event("how is our sales pipeline for the campaign?"))
    await rig.settle()
    [task] = rig.engine.tasks
    assert task.persona is None and task.text == "how is our sales pipeline for the campaign?"
    assert rig.api.posts()[0]["username"] == "Karen"


async def test_an_unknown_persona_and_an_empty_mention_go_to_the_engine_as_they_are(rig: Rig) -> None:
    await rig.event(mention_event("bob, what do you think?"))
    await rig.event(mention_event(""))
    await rig.settle()
    assert [t.text for t in rig.engine.tasks] == ["bob, what do you think?", ""]


async def test_an_avatar_url_replaces_the_emoji(rig: Rig) -> None:
    url = "https://example.com/sophia.png"
    voice = rig.engine.personas["sophia"].voice.model_copy(update={"avatar_url": url})
    reply = Reply(kind=ReplyKind.ANSWER, voice=voice, platform="slack", workspace=TEAM, channel="C1", thread="1.1", text="hi")
    await rig.adapter.outbox.post(reply)
    [post] = rig.api.posts()
    assert post["icon_url"] == url and "icon_emoji" not in post.params and post["username"] == "Sophia"


# --- threads, DMs and what is ignored ----------------------------------------------------------


async def test_a_reply_in_a_known_thread_continues_it_without_a_mention(rig: Rig) -> None:
    rig.engine.known_threads.add(("slack", TEAM, "C0GENERAL", "1700000000.000100"))
    reply = message_event("what about mobile users?", thread_ts="1700000000.000100", user="U0BOB")
    await rig.event(reply)
    await rig.settle()
    [task] = rig.engine.tasks
    assert task.thread == "1700000000.000100" and task.reply_to == "1700000000.000100"
    assert task.text == "what about mobile users?" and task.user == "U0BOB"
    assert all(p["thread_ts"] == "1700000000.000100" for p in rig.api.posts())


async def test_a_reply_in_a_thread_we_do_not_know_is_left_alone(rig: Rig) -> None:
    await rig.event(message_event("just chatting", thread_ts="1600000000.000100"))
    await rig.event(message_event("top-level chatter, no mention"))
    await rig.settle()
    assert rig.engine.tasks == [] and rig.api.posts() == []


async def test_a_direct_message_needs_no_mention(rig: Rig) -> None:
    dm = message_event("sophia, summarise our churn data", channel="D0ALICE", channel_type="im")
    await rig.event(dm)
    await rig.settle()
    [task] = rig.engine.tasks
    assert task.channel == "D0ALICE" and task.thread == dm["ts"] and task.text == "sophia, summarise our churn data"
    assert rig.api.posts()[0]["channel"] == "D0ALICE"


@pytest.mark.parametrize(
    "event",
    [
        message_event("a bot talks", thread_ts="1700000000.000100", bot_id="B0OTHER", subtype="bot_message"),
        message_event("a bot without subtype", thread_ts="1700000000.000100", bot_id="B0OTHER"),
        message_event("edited", thread_ts="1700000000.000100", subtype="message_changed"),
        message_event("", thread_ts="1700000000.000100", subtype="message_deleted"),
        message_event("our own post", thread_ts="1700000000.000100", user=BOT_USER),
        message_event("joined", thread_ts="1700000000.000100", subtype="channel_join"),
        mention_event("a bot mentions us", bot_id="B0OTHER"),
    ],
    ids=["bot_message", "bot_id", "edit", "delete", "ourselves", "join", "bot mention"],
)
async def test_bots_edits_and_deletions_never_start_a_turn(rig: Rig, event: dict[str, Any]) -> None:
    rig.engine.known_threads.add(("slack", TEAM, "C0GENERAL", "1700000000.000100"))
    response = await rig.event(event)
    await rig.settle()
    assert response.status == 200
    assert rig.engine.tasks == [] and rig.api.posts() == []


async def test_a_mention_in_a_thread_arrives_twice_and_is_answered_once(rig: Rig) -> None:
    text = f"<@{BOT_USER}> karen what are the risks?"
    as_message = message_event(text, thread_ts="1700000000.000100")
    as_mention = dict(as_message, type="app_mention")
    as_mention.pop("channel_type")
    await asyncio.gather(rig.event(as_mention), rig.event(as_message))
    await rig.settle()
    assert len(rig.engine.tasks) == 1
    assert len(rig.api.of("chat.update")) == 1 and len(rig.api.posts()) == 1


async def test_slack_retries_never_produce_a_second_answer(rig: Rig) -> None:
    event = mention_event("sophia, why?")
    first = await rig.event(event, event_id="Ev0001")
    again = await rig.event(event, event_id="Ev0001", retry_num=1)
    later = await rig.event(event, event_id="Ev0001", retry_num=2)
    await rig.settle()
    assert [r.status for r in (first, again, later)] == [200, 200, 200]
    assert len(rig.engine.tasks) == 1
    assert len(rig.api.posts()) == 1 and len(rig.api.of("chat.update")) == 1


# --- slash commands ---------------------------------------------------------------------------


async def test_investigate_is_acknowledged_at_once_and_opens_a_thread_under_a_root_post(rig: Rig) -> None:
    started = time.monotonic()
    response, rid = await rig.command("/investigate", "sophia why did sign-ups drop last week?")
    assert time.monotonic() - started < 3.0 and response.status == 200
    assert "investigation" in response.body.lower()  # the ack's text: shown only to the caller
    await rig.settle()

    [task] = rig.engine.tasks
    assert task.kind is TaskKind.INVESTIGATE and task.thread is None
    assert task.text == "sophia why did sign-ups drop last week?" and task.event_id.endswith(".abcdef")
    root, placeholder = rig.api.posts()
    assert "thread_ts" not in root.params and root["username"] == "Sophia"
    assert placeholder["thread_ts"] == root.response["ts"]  # the root's ts became the thread
    [answer] = rig.api.of("chat.update")
    assert answer["ts"] == placeholder.response["ts"]


async def test_investigate_without_text_answers_with_usage_privately(rig: Rig) -> None:
    response, rid = await rig.command("/investigate", "   ")
    await rig.settle()
    assert response.status == 200
    [usage] = rig.responses(rid)
    assert usage["response_type"] == "ephemeral" and "/investigate" in usage["text"]
    assert rig.engine.tasks == [] and rig.api.posts() == []


async def test_personas_lists_them_or_shows_one(rig: Rig) -> None:
    _, all_ = await rig.command("/personas")
    _, one = await rig.command("/personas", "Sophia")
    _, nobody = await rig.command("/personas", "bob")
    await rig.settle()
    assert "Cherry" in rig.responses(all_)[0]["text"] and "Karen" in rig.responses(all_)[0]["text"]
    assert rig.responses(one)[0]["text"].startswith("Sophia: Research")
    assert "don't know" in rig.responses(nobody)[0]["text"] and "Cherry" in rig.responses(nobody)[0]["text"]
    assert all(r["response_type"] == "ephemeral" for r in rig.api.responses)


async def test_memory_shows_what_the_channel_remembers(rig: Rig) -> None:
    _, empty = await rig.command("/memory")
    rig.engine.summaries = [
        ThreadSummary(
            id="inv-7", kind=ThreadKind.INVESTIGATION, title="Why did sign-ups drop?", phase=Phase.PLANNING,
            status=ThreadStatus.WAITING, lead="sophia", turns=4, updated_at=datetime(2026, 1, 5, tzinfo=timezone.utc),
        )
    ]
    _, full = await rig.command("/memory")
    await rig.settle()
    assert "nothing" in rig.responses(empty)[0]["text"]
    text = rig.responses(full)[0]["text"]
    assert "Why did sign-ups drop?" in text and "inv-7" in text and "Sophia" in text and "4 turn" in text
    assert rig.responses(full)[0]["response_type"] == "ephemeral"


async def test_forget_is_for_admins_only(rig: Rig) -> None:
    _, refused = await rig.command("/forget", user="U0ALICE")
    await rig.settle()
    assert rig.engine.forgotten == []
    assert "only" in rig.responses(refused)[0]["text"] and rig.responses(refused)[0]["response_type"] == "ephemeral"

    _, done = await rig.command("/forget", user=ADMIN)
    await rig.settle()
    assert rig.engine.forgotten == [("slack", TEAM, "C0GENERAL")]
    assert "2 thread" in rig.responses(done)[0]["text"]


async def test_investigate_where_the_bot_is_not_a_member_says_how_to_invite_it(rig: Rig) -> None:
    rig.api.fail("chat.postMessage", "not_in_channel")
    _, rid = await rig.command("/investigate", "why is checkout slow?", channel="C0ELSEWHERE")
    await rig.settle()
    [note] = rig.responses(rid)
    assert "/invite" in note["text"] and note["response_type"] == "ephemeral"


# --- buttons ----------------------------------------------------------------------------------


async def test_a_button_click_is_acknowledged_and_becomes_a_task_in_the_message_thread(rig: Rig) -> None:
    response = await rig.click("orchestra_challenge", "inv-42", message_ts="1700000005.000100", thread_ts="1700000001.000100")
    assert response.status == 200
    await rig.settle()
    [task] = rig.engine.tasks
    assert task.kind is TaskKind.CHALLENGE and task.thread == "1700000001.000100" and task.text == ""
    assert task.channel == "C0GENERAL" and task.user == "U0ALICE" and task.event_id.endswith(":U0ALICE")


async def test_buttons_on_a_root_post_use_the_post_as_the_thread(rig: Rig) -> None:
    await rig.click("orchestra_close", "inv-42", message_ts="1700000009.000100")
    await rig.settle()
    [task] = rig.engine.tasks
    assert task.kind is TaskKind.CLOSE and task.thread == "1700000009.000100"


ROOT_TS = "1600000000.000100"


async def post_turn(rig: Rig, channel: str = "C0GENERAL") -> Any:
    """A persona's investigation turn with its three buttons, posted through the outbox: the
    recorded call is the message as a click hands it back (its ts, text and blocks)."""
    actions = [
        Action(kind=TaskKind.CHALLENGE, label="Challenge", investigation_id="inv-42"),
        Action(kind=TaskKind.PLAN, label="Move to planning", investigation_id="inv-42"),
        Action(kind=TaskKind.CLOSE, label="Close", investigation_id="inv-42"),
    ]
    reply = Reply(
        kind=ReplyKind.TURN, voice=rig.engine.personas["sophia"].voice, platform="slack", workspace=TEAM, channel=channel,
        thread=ROOT_TS, text="Sophia · researcher\nSign-ups fell on Mondays & only on mobile.", title="Sophia · researcher",
        mode="researcher", investigation_id="inv-42", actions=actions,
    )
    posted = await rig.adapter.outbox.post(reply)
    [call] = [p for p in rig.api.posts(channel) if p.response["ts"] == posted.message_id]
    assert any(b["type"] == "actions" for b in call.blocks)
    return call


def click_on(turn: Any, **kw: Any) -> dict[str, Any]:
    return dict(message_ts=turn.response["ts"], thread_ts=ROOT_TS, channel=turn["channel"], text=turn["text"], blocks=turn.blocks, **kw)


def updates_of(rig: Rig, turn: Any, ok_only: bool = True) -> list[Any]:
    return [c for c in rig.api.of("chat.update", ok_only=ok_only) if c["ts"] == turn.response["ts"]]


async def test_a_click_submits_once_and_the_buttons_become_a_line_saying_who_asked(rig: Rig) -> None:
    turn = await post_turn(rig)
    response = await rig.click("orchestra_challenge", "inv-42", **click_on(turn))
    assert response.status == 200
    await rig.settle()

    [task] = rig.engine.tasks
    assert task.kind is TaskKind.CHALLENGE and task.message_id == turn.response["ts"] and task.thread == ROOT_TS
    [update] = updates_of(rig, turn)
    assert (update["channel"], update["ts"]) == ("C0GENERAL", turn.response["ts"])
    assert update["text"] == turn["text"]  # the notification fallback, exactly as it was
    at = next(n for n, b in enumerate(turn.blocks) if b["type"] == "actions")
    assert update.blocks[:at] == turn.blocks[:at] and update.blocks[at + 1 :] == turn.blocks[at + 1 :]
    assert update.blocks[at] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "↪ Challenge requested by <@U0ALICE>"}]}
    assert not any(b["type"] == "actions" for b in update.blocks)


async def test_a_double_click_or_two_people_clicking_submit_one_task(rig: Rig) -> None:
    turn = await post_turn(rig)
    other = await post_turn(rig)
    await asyncio.gather(
        rig.click("orchestra_plan", "inv-42", **click_on(turn)),
        rig.click("orchestra_plan", "inv-42", **click_on(turn)),  # the same button again
        rig.click("orchestra_close", "inv-42", user="U0BOB", **click_on(turn)),  # someone else, another button
    )
    await rig.settle()
    [task] = rig.engine.tasks
    assert task.kind is TaskKind.PLAN and task.user == "U0ALICE"
    [update] = updates_of(rig, turn)
    assert "↪ Move to planning requested by <@U0ALICE>" in visible_text(update)

    # the buttons of another message are another choice
    await rig.click("orchestra_close", "inv-42", user="U0BOB", **click_on(other))
    await rig.settle()
    assert [t.kind for t in rig.engine.tasks] == [TaskKind.PLAN, TaskKind.CLOSE]
    assert "↪ Close requested by <@U0BOB>" in visible_text(updates_of(rig, other)[0])


async def test_a_message_counts_as_clicked_only_for_a_short_time(rig: Rig) -> None:
    now = [100.0]
    rig.adapter.listeners.clicks = RecentClicks(window=60, clock=lambda: now[0])
    turn = await post_turn(rig)
    await rig.click("orchestra_challenge", "inv-42", **click_on(turn))
    now[0] += 59
    await rig.click("orchestra_challenge", "inv-42", **click_on(turn))
    await rig.settle()
    assert len(rig.engine.tasks) == 1
    now[0] += 2  # e.g. the update failed and the buttons are still there: a new click counts
    await rig.click("orchestra_challenge", "inv-42", **click_on(turn))
    await rig.settle()
    assert len(rig.engine.tasks) == 2


async def test_a_failed_update_never_fails_the_click_or_loses_the_task(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="adapters.slack.listeners")
    turn = await post_turn(rig)
    rig.api.fail("chat.update", "cant_update_message", times=2)  # ours, and the engine's answer racing it
    response = await rig.click("orchestra_challenge", "inv-42", **click_on(turn))
    await rig.settle()
    assert response.status == 200
    [task] = rig.engine.tasks
    assert task.kind is TaskKind.CHALLENGE
    [failed] = updates_of(rig, turn, ok_only=False)
    assert failed.status != 200
    assert any("cant_update_message" in r.getMessage() and turn.response["ts"] in r.getMessage() for r in caplog.records)


async def test_the_update_is_paced_and_a_429_is_waited_out(rig: Rig) -> None:
    turn = await post_turn(rig)
    pacer = rig.adapter.outbox.pacer
    paced: list[str] = []
    acquire = pacer.acquire

    async def recording(channel: str) -> float:
        paced.append(channel)
        return await acquire(channel)

    pacer.acquire = recording  # type: ignore[method-assign]
    rig.api.rate_limit("chat.update", times=1, retry_after=0)
    await rig.click("orchestra_close", "inv-42", **click_on(turn))  # our update is the first chat.update
    await rig.settle()
    assert len(rig.engine.tasks) == 1
    assert [c.status for c in updates_of(rig, turn, ok_only=False)] == [429, 200]
    assert "↪ Close requested by <@U0ALICE>" in visible_text(updates_of(rig, turn)[0])
    assert paced[0] == "C0GENERAL"  # through the channel's pacer, before the engine's answer


async def test_a_click_without_buttons_to_replace_still_submits_and_changes_nothing(rig: Rig) -> None:
    await rig.click("orchestra_challenge", "inv-42", message_ts="1700000042.000100", blocks=[])
    await rig.settle()
    assert len(rig.engine.tasks) == 1
    assert not [c for c in rig.api.of("chat.update", ok_only=False) if c["ts"] == "1700000042.000100"]


async def test_a_refused_click_leaves_the_buttons_for_someone_allowed(slack_api, tmp_path) -> None:
    rig = await build_rig(slack_api, tmp_path, allowed_users=["U0ALICE"])
    try:
        turn = await post_turn(rig)
        await rig.click("orchestra_challenge", "inv-42", user="U0MALLORY", **click_on(turn))
        await rig.settle()
        assert rig.engine.tasks == [] and updates_of(rig, turn) == []
        await rig.click("orchestra_challenge", "inv-42", **click_on(turn))
        await rig.settle()
        assert [t.user for t in rig.engine.tasks] == ["U0ALICE"] and len(updates_of(rig, turn)) == 1
    finally:
        await rig.settle()
        await rig.adapter.stop()


async def test_reply_actions_become_buttons_carrying_the_investigation_id(rig: Rig) -> None:
    rig.engine.reply_actions = True
    await rig.event(mention_event("karen, review this"))
    await rig.settle()
    blocks = rig.api.of("chat.update")[0].blocks
    [actions] = [b for b in blocks if b["type"] == "actions"]
    [button] = actions["elements"]
    assert button["action_id"] == "orchestra_challenge" and button["value"] == "inv-1"


# --- long answers, rate limits, placeholders ------------------------------------------------


async def test_a_huge_message_is_split_into_several_posts_and_nothing_is_lost(rig: Rig) -> None:
    words = " ".join(f"word{i}" for i in range(6000))  # about 50,000 characters
    huge = words[:40_000]
    rig.engine.answer_with = huge
    await rig.event(mention_event(f"sophia {huge}"))
    await rig.settle()
    [task] = rig.engine.tasks
    assert len(task.text) == len("sophia ") + 40_000  # the whole text reaches the engine

    update = rig.api.of("chat.update")[0]
    later = [p for p in rig.api.posts() if "thinking" not in p["text"]]
    parts = [update, *later]
    assert len(parts) >= 4
    for part in parts:
        assert len(part["text"]) <= MAX_TEXT_CHARS
        assert len(part.blocks) <= MAX_BLOCKS
        assert all(len(t) <= MAX_SECTION_CHARS for t in part.block_texts())
    assert all(p["thread_ts"] == task.thread for p in later)
    sections = "".join(
        b["text"]["text"] for part in parts for b in part.blocks if b["type"] == "section"
    )
    assert sections.split() == huge.split()


async def test_a_429_on_post_message_is_waited_out_and_the_answer_still_arrives(rig: Rig) -> None:
    rig.api.rate_limit("chat.postMessage", times=2, retry_after=0)
    await rig.event(mention_event("sophia, still there?"))
    await rig.settle()
    attempts = rig.api.of("chat.postMessage", ok_only=False)
    assert [c.status for c in attempts] == [429, 429, 200]
    assert len(rig.api.of("chat.update")) == 1


async def test_the_working_placeholder_is_replaced_by_the_answer(rig: Rig) -> None:
    sophia = rig.engine.personas["sophia"].voice
    outbox = rig.adapter.outbox
    waiting = await outbox.working(sophia, "C0GENERAL", "1700000000.000100")
    [placeholder] = rig.api.posts()
    assert placeholder["text"] == "_Sophia is thinking…_" and placeholder["username"] == "Sophia"

    long_text = "\n\n".join("paragraph " + "x" * 900 for _ in range(20))  # ~18,000 characters
    reply = Reply(kind=ReplyKind.ANSWER, voice=sophia, platform="slack", workspace=TEAM, channel="C0GENERAL", thread="1700000000.000100", text=long_text)
    posted = await outbox.post(reply, replace=waiting)
    [update] = rig.api.of("chat.update")
    assert update["ts"] == placeholder.response["ts"] == posted.message_id
    rest = rig.api.posts()[1:]
    assert rest and all(p["thread_ts"] == "1700000000.000100" and p["username"] == "Sophia" for p in rest)

    await outbox.post(reply.model_copy(update={"text": "and one more thing"}))
    assert len(rig.api.of("chat.update")) == 1  # only a post asked to replace it updates it


async def test_a_vanished_placeholder_means_a_fresh_post(rig: Rig) -> None:
    karen = rig.engine.personas["karen"].voice
    waiting = await rig.adapter.outbox.working(karen, "C0GENERAL", "1700000000.000100")
    rig.api.fail("chat.update", "message_not_found")
    reply = Reply(kind=ReplyKind.ANSWER, voice=karen, platform="slack", workspace=TEAM, channel="C0GENERAL", thread="1700000000.000100", text="done")
    await rig.adapter.outbox.post(reply, replace=waiting)
    assert len(rig.api.posts()) == 2 and "done" in visible_text(rig.api.posts()[1])


async def test_a_root_post_returns_its_own_ts_as_the_thread(rig: Rig) -> None:
    cherry = rig.engine.personas["cherry"].voice
    root = Reply(kind=ReplyKind.ROOT, voice=cherry, platform="slack", workspace=TEAM, channel="C0GENERAL", thread=None, text="🔎 Investigation inv-3: why?", title="why?")
    posted = await rig.adapter.outbox.post(root)
    [call] = rig.api.posts()
    assert "thread_ts" not in call.params
    assert posted.thread == posted.message_id and posted.message_id.startswith("17")


# --- security ---------------------------------------------------------------------------------


async def test_unsigned_wrongly_signed_and_stale_requests_are_refused(rig: Rig) -> None:
    body = json.dumps(event_envelope(mention_event("sophia, hi")))
    unsigned = await rig.dispatch(body, {"Content-Type": "application/json"})
    wrong = await rig.dispatch(body, signed_headers("not-the-secret", body, content_type="application/json"))
    stale = await rig.dispatch(body, signed_headers(SECRET, body, content_type="application/json", timestamp=int(time.time()) - 600))
    await rig.settle()
    assert [unsigned.status, wrong.status, stale.status] == [401, 401, 401]
    assert rig.engine.tasks == [] and rig.api.posts() == []


async def test_allowlists_refuse_politely_and_ignore_passive_messages(slack_api, tmp_path) -> None:
    rig = await build_rig(slack_api, tmp_path, allowed_channels=["C0OPS"], allowed_users=["U0ALICE", "U0BOB"])
    try:
        rig.engine.known_threads.add(("slack", TEAM, "C0OPS", "1700000000.000100"))
        await rig.event(mention_event("sophia, hi", channel="C0GENERAL"))  # channel not allowed
        await rig.event(mention_event("sophia, hi", channel="C0OPS", user="U0MALLORY"))  # user not allowed
        await rig.event(message_event("passive", channel="C0OPS", user="U0MALLORY", thread_ts="1700000000.000100"))
        _, rid = await rig.command("/investigate", "anything", channel="C0GENERAL")
        await rig.event(mention_event("sophia, hi", channel="C0OPS", user="U0BOB"))  # allowed
        await rig.settle()
        refusals = slack_api.of("chat.postEphemeral")
        assert sorted((r["channel"], r["user"]) for r in refusals) == [("C0GENERAL", "U0ALICE"), ("C0OPS", "U0MALLORY")]
        assert all("isn't enabled" in r["text"] for r in refusals)
        assert [(t.channel, t.user) for t in rig.engine.tasks] == [("C0OPS", "U0BOB")]
        assert "isn't enabled" in (await rig.command("/investigate", "x", channel="C0GENERAL"))[0].body
    finally:
        await rig.settle()
        await rig.adapter.stop()


async def test_tokens_never_reach_the_logs_or_the_posts(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("slack_sdk", "slack_bolt", "adapters"):  # other tests may have quietened them
        caplog.set_level(logging.DEBUG, logger=name)
    await rig.event(mention_event("sophia, hi"))
    await rig.command("/investigate", "why?")
    await rig.settle()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged  # slack_sdk and bolt did log at DEBUG
    for secret in (BOT_TOKEN, APP_TOKEN, SECRET):
        assert secret not in logged
        assert all(secret not in json.dumps(c.params) for c in rig.api.calls)
    assert all(c.headers.get("Authorization") == f"Bearer {BOT_TOKEN}" for c in rig.api.calls)


# --- HTTP mode: the real aiohttp server -------------------------------------------------------


async def test_http_mode_serves_events_and_health_and_refuses_unsigned_requests(rig: Rig) -> None:
    import aiohttp

    port = await rig.adapter.start_http(port=0, host="127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    body = json.dumps(event_envelope(mention_event("sophia, are you there?")))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/health") as health:
            assert (health.status, await health.text()) == (200, "ok")
        async with http.post(f"{base}/slack/events", data=body, headers={"Content-Type": "application/json"}) as unsigned:
            assert unsigned.status == 401
        headers = signed_headers(SECRET, body, content_type="application/json")
        started = time.monotonic()
        async with http.post(f"{base}/slack/events", data=body, headers=headers) as signed:
            assert signed.status == 200
        assert time.monotonic() - started < 3.0
        challenge = json.dumps({"token": "t", "challenge": "abc123", "type": "url_verification"})
        async with http.post(
            f"{base}/slack/events", data=challenge, headers=signed_headers(SECRET, challenge, content_type="application/json")
        ) as verification:
            assert (await verification.json())["challenge"] == "abc123"
    await rig.settle()
    assert len(rig.engine.tasks) == 1
    await rig.api.wait_for(lambda: rig.api.of("chat.update"))


async def test_http_mode_needs_a_signing_secret(slack_api, tmp_path) -> None:
    settings = make_settings(slack_api, tmp_path).model_copy(update={"slack_signing_secret": None})
    adapter = SlackAdapter(settings, FakeEngine())
    with pytest.raises(ValueError, match="SLACK_SIGNING_SECRET"):
        await adapter.start_http(port=0)


# --- Socket Mode: a local websocket stand-in --------------------------------------------------


async def test_socket_mode_acknowledges_envelopes_and_answers(rig: Rig) -> None:
    await rig.adapter.start_socket_mode()
    await rig.api.wait_connected()
    opened = rig.api.of("apps.connections.open")
    assert opened and opened[0].headers["Authorization"] == f"Bearer {APP_TOKEN}"

    mention = socket_envelope("events_api", event_envelope(mention_event("sophia, what changed?")))
    envelope_id = await rig.api.send_envelope(mention)
    ack = await rig.api.wait_ack(envelope_id)
    assert ack.at - rig.api.sent_envelopes[envelope_id] < 1.0
    # Slack retries an envelope it thinks was not acknowledged: still one answer
    retry = dict(mention, envelope_id="retry-1", retry_attempt=1, retry_reason="timeout")
    await rig.api.send_envelope(retry)
    await rig.api.wait_ack("retry-1")

    command = socket_envelope("slash_commands", command_payload("/investigate", "why is checkout slow?", response_url=rig.api.response_url()))
    await rig.api.send_envelope(command)
    command_ack = await rig.api.wait_ack(command["envelope_id"])
    assert "investigation" in command_ack.payload["text"].lower()

    click = socket_envelope("interactive", block_action_payload("orchestra_plan", "inv-1", thread_ts="1700000001.000100"))
    await rig.api.send_envelope(click)
    await rig.api.wait_ack(click["envelope_id"])

    await rig.api.wait_for(lambda: len(rig.engine.tasks) == 3)
    await rig.settle()
    assert [t.kind for t in rig.engine.tasks] == [TaskKind.MESSAGE, TaskKind.INVESTIGATE, TaskKind.PLAN]
    # three answers, and the clicked message losing its buttons
    await rig.api.wait_for(lambda: len(rig.api.of("chat.update")) == 4)


async def test_socket_mode_needs_an_app_token(slack_api, tmp_path) -> None:
    settings = make_settings(slack_api, tmp_path).model_copy(update={"slack_app_token": None})
    adapter = SlackAdapter(settings, FakeEngine())
    with pytest.raises(ValueError, match="SLACK_APP_TOKEN"):
        await adapter.start_socket_mode()


async def test_stopping_lets_posts_in_flight_finish_and_later_posts_still_go_out(rig: Rig) -> None:
    await rig.adapter.start_http(port=0, host="127.0.0.1")  # opens the pooled session
    rig.api.latency = 0.3
    sophia = rig.engine.personas["sophia"].voice
    reply = Reply(kind=ReplyKind.ANSWER, voice=sophia, platform="slack", workspace=TEAM, channel="C1", thread="1.1", text="late")
    in_flight = asyncio.create_task(rig.adapter.outbox.post(reply))
    await rig.api.wait_for(lambda: rig.api.posts())
    await rig.adapter.stop()
    assert (await in_flight).message_id  # finished, not cut off
    rig.api.latency = 0.0
    assert (await rig.adapter.outbox.post(reply)).message_id  # the engine finishing a turn after stop()


async def test_a_split_reply_cut_short_by_a_crash_gets_its_missing_parts_once(rig: Rig, tmp_path: Path) -> None:
    """The process died after Slack took two of a long reply's parts and before it recorded them:
    the resumed task finds the first part by its key, posts only the parts still missing, and a
    second resume posts nothing."""
    from adapters.slack.outbox import _metadata
    from adapters.slack.render import render_reply
    from engine.memory.store import SQLiteMemory
    from engine.posting import Poster

    huge = " ".join(f"word{i}" for i in range(6000))[:30_000]
    sophia = rig.engine.personas["sophia"].voice
    reply = Reply(kind=ReplyKind.ANSWER, voice=sophia, platform="slack", workspace="T0", channel="C0GENERAL",
                  thread="1700000000.000100", text=huge, key="turn:general-c1:2")
    messages = render_reply(reply)
    assert len(messages) >= 3
    memory = await SQLiteMemory.open(tmp_path / "memory.db")
    try:
        await memory.record_intent(reply.key, task_id=1, platform="slack", workspace="T0", channel="C0GENERAL",
                                   thread=reply.thread)
        for n in (0, 1):  # what the dead process managed to post
            await rig.adapter.client.chat_postMessage(channel="C0GENERAL", thread_ts=reply.thread, text=messages[n].text,
                                                      blocks=messages[n].blocks, metadata=_metadata(reply.key, n))
        poster = Poster(memory)
        poster.register("slack", rig.adapter.outbox)
        for _ in range(2):  # resumed, and resumed again
            posted = await poster.post(reply, task_id=1, thread=None, check_earlier=True)
        parts = rig.api.posts("C0GENERAL")
        assert len(parts) == len(messages)  # each part once: none doubled, none lost
        assert posted.message_id == parts[0].response["ts"]
        assert [p["metadata"]["event_payload"].get("part", 0) for p in parts] == list(range(len(messages)))
        assert await memory.post_for_key(reply.key) == posted.message_id
    finally:
        await memory.close()


class CardlessEngine(FakeEngine):
    """Renders no persona card: a command's check for a persona's name must not need one."""

    def persona_card(self, name: str) -> str | None:
        raise AssertionError("a card was rendered to check a name")


async def test_investigate_checks_a_persona_name_without_rendering_her_card(slack_api, tmp_path) -> None:
    rig = await build_rig(slack_api, tmp_path, engine=CardlessEngine())
    try:
        response, rid = await rig.command("/investigate", "sophia")  # a name and no question
        await rig.settle()
        assert response.status == 200 and "/investigate" in rig.responses(rid)[0]["text"]
        response, _ = await rig.command("/investigate", "why did sign-ups drop?")
        assert response.status == 200 and len(rig.engine.tasks) == 1
    finally:
        await rig.settle()
        await rig.adapter.stop()
