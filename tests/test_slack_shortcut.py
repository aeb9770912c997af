"""Socket Mode's (and HTTP mode's) fast path (`adapters.slack.shortcut`): a mention or message envelope is stored
and acknowledged without Bolt's dispatch, and keeps every guarantee the Bolt path gives: acked
only once stored, answered once however often Slack delivers it, a clear outcome for what cannot
be read. Commands and clicks still go through Bolt, which no longer asks `auth.test` itself.

Real Socket Mode client, real Bolt app, the local Slack; the engine is the real one (offline
model, SQLite file) where answers are counted, a fake where only storing matters.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from tests.servers.slack_api import (
    BOT_ID,
    BOT_USER,
    SlackApiServer,
    command_payload,
    event_envelope,
    mention_event,
    message_event,
    signed_headers,
    socket_envelope,
)
from tests.test_slack import Rig, build_rig, slack_api  # noqa: F401 - fixture
from tests.test_slack_engine import close, live_rig
from tests.test_slack import SECRET
from tests.test_slack_hostile import GatedEngine, post

__all__ = ["slack_api"]


def count_bolt_dispatches(rig: Rig) -> list[str]:
    """A global Bolt middleware that records every request Bolt dispatches (by its type)."""
    seen: list[str] = []

    @rig.adapter.app.middleware
    async def record(body: dict[str, Any], next: Any) -> Any:  # noqa: A002 - Bolt's argument name
        seen.append(str(body.get("command") or body.get("type")))
        return await next()

    return seen


async def connect(rig: Rig, api: SlackApiServer) -> None:
    await rig.adapter.start_socket_mode()
    await api.wait_connected()


def answers(api: SlackApiServer, channel: str) -> list[Any]:
    return [c for c in api.of("chat.update") if c.get("channel") == channel]


async def test_a_mention_is_stored_and_acked_without_bolt_and_answered_once(slack_api, tmp_path) -> None:  # noqa: F811
    rig, memory = await live_rig(slack_api, tmp_path)
    dispatched = count_bolt_dispatches(rig)
    try:
        await connect(rig, slack_api)
        event = mention_event("sophia, why did sign-ups drop?", channel="C0FAST")
        envelope_id = await slack_api.send_envelope(socket_envelope("events_api", event_envelope(event)))
        await slack_api.wait_ack(envelope_id)
        await rig.settle()
        assert dispatched == []  # Bolt's dispatch never ran for it
        [placeholder] = [p for p in slack_api.posts() if p.get("channel") == "C0FAST"]
        [answer] = answers(slack_api, "C0FAST")
        assert placeholder["thread_ts"] == event["ts"] and answer["ts"] == placeholder.response["ts"]
        assert "Offline rehearsal" in str(answer.params)
        # a slash command still goes through Bolt
        ack = await slack_api.send_envelope(socket_envelope("slash_commands", command_payload("/personas", response_url=slack_api.response_url())))
        await slack_api.wait_ack(ack)
        assert dispatched == ["/personas"]
    finally:
        await close(rig, memory)


async def test_a_redelivered_envelope_and_its_message_twin_are_acked_and_answered_once(slack_api, tmp_path) -> None:  # noqa: F811
    """Slack re-sends an envelope it thinks was lost (retry_attempt 1), and a mention also comes
    as a `message` event for the same message: every copy is acked, one answer is posted."""
    rig, memory = await live_rig(slack_api, tmp_path)
    dispatched = count_bolt_dispatches(rig)
    try:
        await connect(rig, slack_api)
        event = mention_event("karen, is the pricing page ready?", channel="C0TWICE")
        body = event_envelope(event)
        first = socket_envelope("events_api", body)
        again = {**first, "retry_attempt": 1, "retry_reason": "timeout"}
        twin = socket_envelope("events_api", event_envelope({**event, "type": "message", "channel_type": "channel"}))
        ids = [await slack_api.send_envelope(e) for e in (first, again, twin)]
        for envelope_id in ids:
            await slack_api.wait_ack(envelope_id)
        await rig.settle()
        assert len(answers(slack_api, "C0TWICE")) == 1
        assert len([p for p in slack_api.posts() if p.get("channel") == "C0TWICE"]) == 1
        assert dispatched == []
    finally:
        await close(rig, memory)


@pytest.mark.parametrize("event", [
    mention_event("hi", user=BOT_USER),  # our own user
    message_event("a bot's post", bot_id=BOT_ID),  # our bot's post
    message_event("edited", subtype="message_changed"),
    message_event("chatter that mentions nobody"),
])
async def test_events_that_start_nothing_are_acked_and_store_nothing(slack_api, tmp_path, event) -> None:  # noqa: F811
    engine = GatedEngine()
    engine.gate.set()
    rig = await build_rig(slack_api, tmp_path, engine=engine)
    dispatched = count_bolt_dispatches(rig)
    try:
        await connect(rig, slack_api)
        envelope_id = await slack_api.send_envelope(socket_envelope("events_api", event_envelope(event)))
        await slack_api.wait_ack(envelope_id)
        assert engine.stored == [] and dispatched == []
    finally:
        await rig.settle()
        await rig.adapter.stop()


@pytest.mark.parametrize("event", [
    {k: v for k, v in mention_event("sophia, hi").items() if k != "user"},
    mention_event("sophia, hi", ts=1700000000.1),
    mention_event("sophia, hi", channel=["C1"]),
    mention_event("sophia, hi", subtype=["x"]),
])
async def test_a_mention_that_cannot_be_read_is_not_acked_and_logged_in_one_line(
    slack_api, tmp_path, caplog: pytest.LogCaptureFixture, event  # noqa: F811
) -> None:
    """As on the Bolt path (`SlackListeners.on_error`: a 400): no ack, nothing stored, one
    warning line without a traceback. Slack will send it again, and it is refused again."""
    engine = GatedEngine()
    engine.gate.set()
    rig = await build_rig(slack_api, tmp_path, engine=engine)
    dispatched = count_bolt_dispatches(rig)
    try:
        await connect(rig, slack_api)
        with caplog.at_level(logging.INFO):
            envelope_id = await slack_api.send_envelope(socket_envelope("events_api", event_envelope(event)))
            await asyncio.sleep(0.3)
        assert envelope_id not in slack_api.acks
        assert engine.stored == [] and dispatched == []
        refused = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(refused) == 1 and refused[0].exc_info is None
        # the connection is still good: the next mention is taken
        ok = await slack_api.send_envelope(socket_envelope("events_api", event_envelope(mention_event("sophia, hello"))))
        await slack_api.wait_ack(ok)
        assert len(engine.stored) == 1
    finally:
        await rig.settle()
        await rig.adapter.stop()


async def test_envelopes_of_other_shapes_are_left_to_bolt(slack_api, tmp_path) -> None:  # noqa: F811
    engine = GatedEngine()
    engine.gate.set()
    rig = await build_rig(slack_api, tmp_path, engine=engine)
    dispatched = count_bolt_dispatches(rig)
    try:
        await connect(rig, slack_api)
        other = event_envelope({"type": "reaction_added", "user": "U0ALICE", "reaction": "tada", "event_ts": "1.2"})
        envelope_id = await slack_api.send_envelope(socket_envelope("events_api", other))
        await slack_api.wait_ack(envelope_id)  # subscribed but not ours: Bolt acks it
        assert dispatched == ["event_callback"] and engine.stored == []
    finally:
        await rig.settle()
        await rig.adapter.stop()


async def test_a_burst_of_commands_on_a_cold_start_asks_slack_who_we_are_only_once(slack_api, tmp_path) -> None:  # noqa: F811
    """Bolt's own authorization used to call `auth.test` for every request that arrived before
    its first answer (a cold burst of 200 made 112 calls); it now has the answer from start-up."""
    engine = GatedEngine()
    engine.gate.set()
    rig = await build_rig(slack_api, tmp_path, engine=engine)
    try:
        await connect(rig, slack_api)
        envelopes = [socket_envelope("slash_commands", command_payload("/personas", response_url=slack_api.response_url())) for _ in range(20)]
        ids = [await slack_api.send_envelope(e) for e in envelopes]
        for envelope_id in ids:
            await slack_api.wait_ack(envelope_id)
        assert len(slack_api.of("auth.test")) == 1  # start-up's own
    finally:
        await rig.settle()
        await rig.adapter.stop()


async def test_over_http_a_mention_and_slacks_retry_of_it_are_answered_once_without_bolt(slack_api, tmp_path) -> None:  # noqa: F811
    """HTTP mode takes the same shortcut once the signature is checked: each copy gets its 200
    after the task is stored, Slack's retry (X-Slack-Retry-Num) finds it stored, one answer."""
    import aiohttp

    rig, memory = await live_rig(slack_api, tmp_path)
    dispatched = count_bolt_dispatches(rig)
    try:
        port = await rig.adapter.start_http(port=0, host="127.0.0.1")
        event = mention_event("cherry, what should we do first?", channel="C0HTTP")
        body = json.dumps(event_envelope(event))
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            assert await post(http, base, body, signed_headers(SECRET, body, content_type="application/json")) == 200
            retry = signed_headers(SECRET, body, content_type="application/json", retry_num=1)
            assert await post(http, base, body, retry) == 200
            unsigned = {"Content-Type": "application/json"}
            assert await post(http, base, body, unsigned) == 401  # the signature still comes first
        await rig.settle()
        assert len(answers(slack_api, "C0HTTP")) == 1 and dispatched == []
    finally:
        await close(rig, memory)
