"""What people and the network can throw at the Slack adapter, through signed requests into the
real Bolt app (HTTP and Socket Mode) with the local Slack stand-in:

- one event that can never be stored harms no other event of its batch;
- an event, a command or a click is acknowledged only once its task is in SQLite;
- malformed requests get a 4xx and at most one log line, never a 500 or a traceback;
- whatever anyone wrote, no post pings anybody or shows a link under a false label.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
import pytest

from engine.engine import Engine, EngineConfig
from engine.memory.store import SQLiteMemory
from engine.models import Accepted, Task
from engine.personas import PersonaRegistry
from engine.providers import OfflineProvider
from tests.servers.slack_api import (
    TEAM,
    block_action_payload,
    command_payload,
    event_envelope,
    form_body,
    interaction_body,
    mention_event,
    message_event,
    signature,
    signed_headers,
    socket_envelope,
)
from tests.test_slack import SECRET, FakeEngine, Rig, build_rig, slack_api  # noqa: F401 - fixture
from tests.test_slack_render import HOSTILE, all_texts, pings_and_relabels

__all__ = ["slack_api"]


async def post(http: aiohttp.ClientSession, base: str, body: str | bytes, headers: dict[str, str]) -> int:
    async with http.post(f"{base}/slack/events", data=body, headers=headers) as response:
        await response.read()
        return response.status


def signed_event(event: dict[str, Any]) -> tuple[str, dict[str, str]]:
    body = json.dumps(event_envelope(event))
    return body, signed_headers(SECRET, body, content_type="application/json")


def assert_no_pings(rig: Rig, asker: str | None = None) -> None:
    for call in rig.api.calls:
        if call.method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            for text in all_texts(call.params.get("text")) + all_texts(call.blocks):
                assert pings_and_relabels(text, asker=asker) == [], text
    for response in rig.api.responses:
        assert pings_and_relabels(str(response.get("text", ""))) == []


# --- one bad event harms no other -----------------------------------------------------------------


async def test_one_event_that_cannot_be_stored_among_30_leaves_the_29_others_answered(slack_api, tmp_path, caplog) -> None:  # noqa: F811
    caplog.set_level(logging.WARNING)
    memory = await SQLiteMemory.open(tmp_path / "orchestra.db")
    engine = Engine(memory, OfflineProvider(), PersonaRegistry.defaults(), EngineConfig())
    rig = await build_rig(slack_api, tmp_path, engine=engine)
    await engine.start()
    try:
        port = await rig.adapter.start_http(port=0, host="127.0.0.1")
        events = [mention_event(f"sophia, question number {n}?", user=f"U0P{n:03d}", ts=f"1700000100.{n:06d}") for n in range(30)]
        events[11] = mention_event("sophia, a lone surrogate \ud800 in my text", ts="1700000100.000011")
        async with aiohttp.ClientSession() as http:
            statuses = await asyncio.gather(*(post(http, f"http://127.0.0.1:{port}", *signed_event(e)) for e in events))
        assert statuses == [200] * 30  # the bad one can never be stored: Slack must not resend it
        await rig.settle()
        answered = {c["thread_ts"] for c in rig.api.posts()}
        assert answered == {e["ts"] for n, e in enumerate(events) if n != 11}
        stored = await memory.export_channel("slack", TEAM, "C0GENERAL")
        assert len(stored["tasks"]) == 29
        [told] = rig.api.of("chat.postEphemeral")  # the person hears it, privately, once
        assert told["user"] == events[11]["user"] and "couldn't read" in told["text"]
        refused = [r for r in caplog.records if "can never be stored" in r.getMessage() and r.name.startswith("adapters")]
        assert len(refused) == 1 and not any(r.exc_info for r in caplog.records)
    finally:
        await rig.settle()
        await rig.adapter.stop()
        await engine.stop()
        await memory.close()


async def test_a_locked_database_is_not_acknowledged_so_slack_sends_it_again(slack_api, tmp_path) -> None:  # noqa: F811
    import sqlite3

    memory = await SQLiteMemory.open(tmp_path / "orchestra.db")
    engine = Engine(memory, OfflineProvider(), PersonaRegistry.defaults(), EngineConfig())
    rig = await build_rig(slack_api, tmp_path, engine=engine)
    await memory._db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(tmp_path / "orchestra.db", isolation_level=None)
    event = mention_event("sophia, are you there?")
    try:
        other.execute("BEGIN EXCLUSIVE")
        locked = await rig.event(event, event_id="Ev1")
        other.execute("ROLLBACK")
        retried = await rig.event(event, event_id="Ev1", retry_num=1)
        assert locked.status >= 500 and retried.status == 200
        await rig.settle()
        assert [c["thread_ts"] for c in rig.api.posts()] == [event["ts"]]
    finally:
        other.close()
        await rig.settle()
        await rig.adapter.stop()
        await engine.stop()
        await memory.close()


# --- acknowledged only after it is stored ---------------------------------------------------------


class GatedEngine(FakeEngine):
    """submit() waits until the test opens the gate: nothing may be acknowledged before."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.stored: list[Task] = []

    async def submit(self, task: Task) -> Accepted:
        self.entered.set()
        await self.gate.wait()
        accepted = await super().submit(task)
        self.stored.append(task)
        return accepted


def http_request(kind: str, api: Any) -> tuple[str, dict[str, str]]:
    if kind == "event":
        return signed_event(mention_event("sophia, hello?"))
    if kind == "command":
        body = form_body(command_payload("/investigate", "why is checkout slow?", response_url=api.response_url()))
    else:
        body = interaction_body(block_action_payload("orchestra_plan", "inv-1", response_url=api.response_url()))
    return body, signed_headers(SECRET, body, content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("kind", ["event", "command", "click"])
async def test_http_answers_only_after_the_task_is_stored(slack_api, tmp_path, kind: str) -> None:  # noqa: F811
    engine = GatedEngine()
    rig = await build_rig(slack_api, tmp_path, engine=engine)
    try:
        port = await rig.adapter.start_http(port=0, host="127.0.0.1")
        async with aiohttp.ClientSession() as http:
            sent = asyncio.create_task(post(http, f"http://127.0.0.1:{port}", *http_request(kind, slack_api)))
            await asyncio.wait_for(engine.entered.wait(), 5)
            await asyncio.sleep(0.3)
            assert not sent.done()  # no 200 while the task is not stored
            engine.gate.set()
            assert await sent == 200
        assert len(engine.stored) == 1
    finally:
        engine.gate.set()
        await rig.settle()
        await rig.adapter.stop()


@pytest.mark.parametrize("kind", ["events_api", "slash_commands", "interactive"])
async def test_socket_mode_acks_only_after_the_task_is_stored(slack_api, tmp_path, kind: str) -> None:  # noqa: F811
    engine = GatedEngine()
    rig = await build_rig(slack_api, tmp_path, engine=engine)
    payload = {
        "events_api": lambda: event_envelope(mention_event("sophia, hello?")),
        "slash_commands": lambda: command_payload("/investigate", "why?", response_url=slack_api.response_url()),
        "interactive": lambda: block_action_payload("orchestra_plan", "inv-1", response_url=slack_api.response_url()),
    }[kind]()
    try:
        await rig.adapter.start_socket_mode()
        await slack_api.wait_connected()
        envelope_id = await slack_api.send_envelope(socket_envelope(kind, payload))
        await asyncio.wait_for(engine.entered.wait(), 5)
        await asyncio.sleep(0.3)
        assert envelope_id not in slack_api.acks  # not acknowledged while the task is not stored
        engine.gate.set()
        await slack_api.wait_ack(envelope_id)
        assert len(engine.stored) == 1
    finally:
        engine.gate.set()
        await rig.settle()
        await rig.adapter.stop()


# --- hostile requests -----------------------------------------------------------------------------


def raw(body: bytes | str, *, timestamp: str | None = None, content_type: str = "application/json") -> tuple[bytes, dict[str, str]]:
    """`body` signed properly (or with the given bad timestamp, signed with it)."""
    data = body.encode() if isinstance(body, str) else body
    ts = timestamp if timestamp is not None else str(int(time.time()))
    import hashlib
    import hmac

    sig = "v0=" + hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + data, hashlib.sha256).hexdigest()
    return data, {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}


def envelope_with(**event: Any) -> str:
    base = mention_event("sophia, hi")
    base.update(event)
    return json.dumps(event_envelope({k: v for k, v in base.items() if v is not ...}))


def command_form(**fields: Any) -> str:
    payload = command_payload("/investigate", "why?")
    payload.update(fields)
    return form_body({k: v for k, v in payload.items() if v is not ...})


GOOD = json.dumps(event_envelope(mention_event("sophia, hi")))


def hostile_requests() -> dict[str, tuple[bytes, dict[str, str]]]:
    cases: dict[str, tuple[bytes, dict[str, str]]] = {
        "timestamp abc": raw(GOOD, timestamp="abc"),
        "timestamp 1.5": raw(GOOD, timestamp="1.5"),
        "timestamp empty": raw(GOOD, timestamp=""),
        "timestamp huge": raw(GOOD, timestamp="9" * 400),
        "bad JSON": raw("{not json"),
        "null": raw("null"),
        "array": raw("[1, 2, 3]"),
        "a number": raw("42"),
        "not UTF-8": raw(b'{"type": "event_callback", "event": "\xff\xfe"}'),
        "deeply nested": raw("[" * 100_000 + "]" * 100_000),
        "deeply nested object": raw('{"a":' * 50_000 + "1" + "}" * 50_000),
        "event missing": raw(json.dumps({k: v for k, v in json.loads(GOOD).items() if k != "event"})),
        "event null": raw(json.dumps({**json.loads(GOOD), "event": None})),
        "event a string": raw(json.dumps({**json.loads(GOOD), "event": "hello"})),
        "event.user missing": raw(envelope_with(user=...)),
        "event.user a list": raw(envelope_with(user=["U1"])),
        "event.ts missing": raw(envelope_with(ts=...)),
        "event.ts a number": raw(envelope_with(ts=1700000000.1)),
        "event.channel missing": raw(envelope_with(channel=...)),
        "event.text a number": raw(envelope_with(text=12345)),
        "event.text an object": raw(envelope_with(text={"a": 1})),
        "event.subtype a list": raw(envelope_with(subtype=["x"])),
        "message.thread_ts a dict": raw(json.dumps(event_envelope(message_event("hi", thread_ts={"x": 1})))),
        "unknown type": raw(json.dumps({**json.loads(GOOD), "type": "something_else"})),
        "type missing": raw(json.dumps({k: v for k, v in json.loads(GOOD).items() if k != "type"})),
        "command without channel_id": raw(command_form(channel_id=...), content_type="application/x-www-form-urlencoded"),
        "command without user_id": raw(command_form(user_id=...), content_type="application/x-www-form-urlencoded"),
        "command /memory without channel_id": raw(
            form_body({k: v for k, v in command_payload("/memory").items() if k != "channel_id"}),
            content_type="application/x-www-form-urlencoded",
        ),
        "form garbage": raw("%%%&&&===", content_type="application/x-www-form-urlencoded"),
        "click payload not JSON": raw("payload=%7Bnope", content_type="application/x-www-form-urlencoded"),
        "click without user": raw(
            interaction_body({k: v for k, v in block_action_payload("orchestra_plan", "inv-1").items() if k != "user"}),
            content_type="application/x-www-form-urlencoded",
        ),
        "click with a string channel": raw(
            interaction_body({**block_action_payload("orchestra_plan", "inv-1"), "channel": "C1", "container": "x", "message": 5}),
            content_type="application/x-www-form-urlencoded",
        ),
    }
    body = GOOD.encode()
    cases["signature missing"] = (body, {"Content-Type": "application/json", "X-Slack-Request-Timestamp": str(int(time.time()))})
    cases["signature garbage"] = (body, {"Content-Type": "application/json", "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=\u00e9"})
    cases["timestamp missing"] = (body, {"Content-Type": "application/json", "X-Slack-Signature": signature(SECRET, "", GOOD)})
    return cases


async def test_hostile_requests_get_a_4xx_and_at_most_one_log_line_never_a_500(slack_api, tmp_path, caplog) -> None:  # noqa: F811
    caplog.set_level(logging.WARNING)
    rig = await build_rig(slack_api, tmp_path)
    try:
        port = await rig.adapter.start_http(port=0, host="127.0.0.1")
        async with aiohttp.ClientSession() as http:
            for name, (body, headers) in hostile_requests().items():
                caplog.clear()
                status = await post(http, f"http://127.0.0.1:{port}", body, headers)
                await rig.settle()
                assert 400 <= status < 500, (name, status)
                records = [r for r in caplog.records if r.levelno >= logging.WARNING]
                assert len(records) <= 1, (name, [r.getMessage() for r in records])
                assert not any(r.exc_info or "Traceback" in r.getMessage() for r in records), name
                assert all("\n" not in r.getMessage() for r in records), name
        assert rig.engine.tasks == [] and rig.api.posts() == []
    finally:
        await rig.settle()
        await rig.adapter.stop()


async def test_whatever_people_write_the_echo_pings_nobody(rig: Rig) -> None:
    await rig.event(mention_event(f"sophia, {HOSTILE}"))
    crowd = " ".join(f"<@U{n:06d}>" for n in range(300))
    await rig.event(mention_event(f"karen, {crowd}"))
    _, rid = await rig.command("/investigate", f"sophia {HOSTILE}")
    await rig.command("/personas", HOSTILE)
    await rig.settle()
    assert len(rig.engine.tasks) == 3 and len(rig.api.posts()) >= 3
    assert_no_pings(rig)


@pytest.fixture
async def rig(slack_api, tmp_path):  # noqa: F811
    rig = await build_rig(slack_api, tmp_path)
    yield rig
    await rig.settle()
    await rig.adapter.stop()


# --- /investigate with only a name ----------------------------------------------------------------


@pytest.mark.parametrize("text", ["sophia", "Karen:", "@cherry,", "  SOPHIA  "])
async def test_investigate_with_only_a_persona_name_answers_with_usage_privately(rig: Rig, text: str) -> None:
    response, rid = await rig.command("/investigate", text)
    await rig.settle()
    assert response.status == 200
    [usage] = rig.responses(rid)
    assert usage["response_type"] == "ephemeral" and "/investigate" in usage["text"]
    assert rig.engine.tasks == [] and rig.api.posts() == []


# --- errors speak to people -----------------------------------------------------------------------


def chat_texts(rig: Rig) -> str:
    return "\n".join(
        t for c in rig.api.calls if c.method in ("chat.postMessage", "chat.update") for t in all_texts(c.params.get("text")) + all_texts(c.blocks)
    )


@pytest.mark.parametrize("sdk", ["anthropic", "openai"])
@pytest.mark.parametrize("failure", ["refused", "server error", "bad request naming a host"])
async def test_model_errors_in_chat_name_no_host_port_class_or_zero_retries(slack_api, tmp_path, caplog, sdk: str, failure: str) -> None:  # noqa: F811
    from engine.providers import AnthropicProvider, OpenAIProvider
    from tests.servers import anthropic_server as anth
    from tests.servers import openai_server as oai
    from tests.servers.anthropic_server import AnthropicServer
    from tests.servers.openai_server import OpenAIServer

    caplog.set_level(logging.WARNING)
    server = await (AnthropicServer() if sdk == "anthropic" else OpenAIServer()).start()
    port = server.port
    if failure == "refused":
        await server.stop()  # nothing listens there now: connection refused
    else:
        error = anth.error if sdk == "anthropic" else oai.error
        server.always(error(500, "boom") if failure == "server error" else error(400, "upstream http://10.1.2.3:8080/v1 said: json parse error at line 1"))
    provider: Any = (
        AnthropicProvider("sk-ant-test-key-000000", server.base_url, "claude-test", timeout=2, max_retries=0)
        if sdk == "anthropic"
        else OpenAIProvider("sk-test-key-000000", server.base_url, "local-model", timeout=2, max_retries=0)
    )
    memory = await SQLiteMemory.open(tmp_path / "orchestra.db")
    engine = Engine(memory, provider, PersonaRegistry.defaults(), EngineConfig())
    rig = await build_rig(slack_api, tmp_path, engine=engine)
    try:
        await rig.event(mention_event("sophia, why did sign-ups drop?"))
        await rig.settle()
        shown = chat_texts(rig)
        assert "couldn't finish this" in shown
        for leak in ("127.0.0.1", str(port), "10.1.2.3", "8080", "Error", "Exception", "0 retries", "Traceback"):
            assert leak not in shown, (leak, shown)
        if failure == "refused":
            assert any(f"127.0.0.1:{port}" in r.getMessage() for r in caplog.records)  # the log says where
    finally:
        await rig.settle()
        await rig.adapter.stop()
        await engine.stop()
        await memory.close()
        await provider.aclose()
        if failure != "refused":
            await server.stop()
