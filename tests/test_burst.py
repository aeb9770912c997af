"""What a burst needs (issue 12): the model calls in flight are bounded (ORCHESTRA_MAX_MODEL_CALLS),
the SDKs keep a pool sized for them, and the model path is warmed before the bot is ready.
No timing is asserted: only what happens, and in which order."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from bot.bootstrap import bootstrap
from bot.settings import DEFAULT_MAX_MODEL_CALLS, SettingsError, load_settings
from engine.ports import ChatMessage, ModelRequest, ModelResponse, Usage
from engine.providers import CallLimit, build_provider
from tests.servers.anthropic_server import AnthropicServer
from tests.servers.openai_server import OpenAIServer

pytest_plugins = ["tests.servers.fixtures"]

ROOT = Path(__file__).resolve().parent.parent

from tests.settings_env import PREFIXES, clean_settings_env  # noqa: F401 - autouse: no settings from this machine




def ask(text: str = "hello") -> ModelRequest:
    return ModelRequest(system="be brief", messages=[ChatMessage(role="user", content=text)])


# --- the setting --------------------------------------------------------------------------------


def test_max_model_calls_has_a_default_and_can_be_set(monkeypatch, tmp_path):
    assert load_settings(db=tmp_path / "m.db").max_model_calls == DEFAULT_MAX_MODEL_CALLS
    monkeypatch.setenv("ORCHESTRA_MAX_MODEL_CALLS", "40")
    assert load_settings(db=tmp_path / "m.db").max_model_calls == 40


@pytest.mark.parametrize("value", ["0", "-3", "lots", "1.5", "100000"])
def test_a_bad_max_model_calls_names_the_setting(monkeypatch, tmp_path, value):
    monkeypatch.setenv("ORCHESTRA_MAX_MODEL_CALLS", value)
    with pytest.raises(SettingsError) as excinfo:
        load_settings(db=tmp_path / "m.db")
    assert "ORCHESTRA_MAX_MODEL_CALLS" in str(excinfo.value)


async def test_a_bad_max_model_calls_stops_orchestra_with_exit_code_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    env.update(ORCHESTRA_MAX_MODEL_CALLS="none", ORCHESTRA_DB=str(tmp_path / "m.db"), PYTHONPATH=str(ROOT))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())",
        cwd=tmp_path, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    text = (out + err).decode()
    assert "ORCHESTRA_MAX_MODEL_CALLS" in text and "Traceback" not in text


# --- the bound ----------------------------------------------------------------------------------


class GatedModel:
    """Holds every call until released, counting how many are in at once."""

    name = "gated"

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.release = asyncio.Event()

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            await self.release.wait()
        finally:
            self.inside -= 1
        return ModelResponse(text=request.messages[-1].content, usage=Usage(input_tokens=1, output_tokens=1), model="g")

    async def aclose(self) -> None:
        return None


async def test_no_more_model_calls_run_at_once_than_the_limit_and_all_finish_in_order():
    inner = GatedModel()
    limited = CallLimit(inner, 3)
    calls = [asyncio.create_task(limited.generate(ask(f"q{i}"))) for i in range(10)]
    while inner.inside < 3:
        await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    assert inner.inside == 3 and limited.in_flight == 3
    inner.release.set()
    answers = await asyncio.gather(*calls)
    assert [a.text for a in answers] == [f"q{i}" for i in range(10)]
    assert inner.most == 3 and limited.in_flight == 0


def test_the_limit_passes_everything_else_through():
    inner = GatedModel()
    limited = CallLimit(inner, 2)
    assert limited.name == "gated" and limited.inner is inner
    with pytest.raises(ValueError):
        CallLimit(inner, 0)


async def test_bootstrap_bounds_the_configured_provider(tmp_path, openai_server: OpenAIServer):
    settings = load_settings(db=tmp_path / "m.db", openai_base_url=openai_server.base_url, max_model_calls=7)
    app = await bootstrap(settings)
    try:
        assert isinstance(app.provider, CallLimit) and app.provider.limit == 7
        assert app.provider.name == "openai"
    finally:
        await app.aclose()


# --- the pool -----------------------------------------------------------------------------------


async def test_both_sdks_keep_a_pool_as_large_as_the_limit(openai_server: OpenAIServer):
    async with AnthropicServer() as anthropic_server:
        for kind, extra in (("openai", {"openai_base_url": openai_server.base_url}),
                            ("anthropic", {"anthropic_base_url": anthropic_server.url})):
            provider = build_provider(kind, max_connections=33, **extra)
            http = provider._client._client  # noqa: SLF001
            assert "Aio" in type(http).__name__, type(http)  # aiohttp's pool, not httpcore's
            transport = http._transport  # noqa: SLF001
            assert transport.limits.max_connections == 33 and transport.limits.max_keepalive_connections == 33
            await provider.aclose()


# --- warm-up before ready ----------------------------------------------------------------------


async def test_bootstrap_warms_the_model_path_without_calling_the_model(tmp_path, openai_server: OpenAIServer):
    openai_server.reply_text("Hi, I'm Sophia.")
    settings = load_settings(db=tmp_path / "m.db", openai_base_url=openai_server.base_url)
    app = await bootstrap(settings)
    try:
        client = app.provider.inner._client  # noqa: SLF001
        assert "chat" in client.__dict__  # the SDK's lazy resources were loaded before bootstrap returned
        assert openai_server.requests == []  # …by a rehearsal that never reached the model server
        answer = await app.provider.generate(ask())
        assert answer.text == "Hi, I'm Sophia." and len(openai_server.requests) == 1
    finally:
        await app.aclose()


async def test_anthropic_warm_up_does_not_reach_the_server():
    async with AnthropicServer() as server:
        provider = build_provider("anthropic", anthropic_base_url=server.url, max_connections=4)
        try:
            await provider.warm_up()
            assert server.requests == []
        finally:
            await provider.aclose()


class RecordingProvider:
    name = "recording"

    def __init__(self) -> None:
        self.warmed = 0
        self.calls = 0

    async def warm_up(self) -> None:
        self.warmed += 1

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        raise AssertionError("no model call at start-up")

    async def aclose(self) -> None:
        return None


async def test_bootstrap_warms_up_the_provider_it_is_given_before_returning(tmp_path):
    provider = RecordingProvider()
    app = await bootstrap(load_settings(db=tmp_path / "m.db"), provider=provider)
    try:
        assert provider.warmed == 1 and provider.calls == 0
    finally:
        await app.aclose()


class FailingWarmUp(RecordingProvider):
    async def warm_up(self) -> None:
        raise RuntimeError("cannot rehearse")


async def test_a_warm_up_that_fails_does_not_stop_start_up(tmp_path):
    app = await bootstrap(load_settings(db=tmp_path / "m.db"), provider=FailingWarmUp())
    await app.aclose()


# --- acknowledgements first --------------------------------------------------------------------


async def test_no_work_starts_while_an_acknowledgement_is_owed(tmp_path):
    from engine.engine import Engine, EngineConfig
    from engine.memory.store import SQLiteMemory
    from engine.models import Task
    from engine.personas import PersonaRegistry
    from tests.fakes import FakeOutbox, ScriptedProvider

    memory = await SQLiteMemory.open(tmp_path / "m.db")
    provider = ScriptedProvider(fallback=lambda request: "Mondays are slow.")
    engine = Engine(memory, provider, PersonaRegistry.defaults(), EngineConfig())
    outbox = FakeOutbox()
    engine.register_outbox("local", outbox)
    engine.intake.patience = 60.0  # only the ack may release the work in this test
    try:
        task = Task(platform="local", workspace="local", channel="general", user="ada",
                    text="sophia, why did sign-ups drop?", event_id="local:1", message_id="m1", thread="m1")
        async with engine.intake.taking():
            accepted = await engine.submit(task)  # stored…
            assert not accepted.duplicate
            for _ in range(50):
                await asyncio.sleep(0)
            assert provider.requests == [] and outbox.posts == [] and outbox.working_calls == []  # …nothing runs before the ack
        await engine.wait_idle()
        assert len(provider.requests) == 1 and outbox.posts
    finally:
        await engine.stop()
        await memory.close()


async def test_socket_mode_sends_the_ack_before_any_work_for_the_envelope(tmp_path):
    from engine.engine import Engine, EngineConfig
    from engine.memory.store import SQLiteMemory
    from engine.personas import PersonaRegistry
    from tests.fakes import ScriptedProvider
    from tests.servers.slack_api import SlackApiServer, event_envelope, mention_event, socket_envelope
    from tests.test_slack import build_rig

    api = await SlackApiServer().start()
    memory = await SQLiteMemory.open(tmp_path / "m.db")
    owed_during_work: list[int] = []
    acked_before_model: list[bool] = []
    ids: list[str] = []

    def answer(request: ModelRequest) -> str:
        acked_before_model.append(all(i in api.acks for i in ids))
        return "Mondays are slow."

    engine = Engine(memory, ScriptedProvider(fallback=answer), PersonaRegistry.defaults(), EngineConfig())
    rig = await build_rig(api, tmp_path, engine=engine)
    submit = engine.submit

    async def observed_submit(task):  # the ack is owed while the event is being stored
        owed_during_work.append(engine.intake.owed)
        return await submit(task)

    engine.submit = observed_submit  # type: ignore[method-assign]
    await engine.start()
    try:
        await rig.adapter.start_socket_mode()
        await api.wait_connected()
        for i in range(5):
            envelope = socket_envelope("events_api", event_envelope(mention_event("sophia, why?", channel=f"C{i}")))
            ids.append(envelope["envelope_id"])
        for envelope_id, i in zip(ids, range(5)):
            envelope = socket_envelope("events_api", event_envelope(mention_event("sophia, why?", channel=f"C{i}")))
            envelope["envelope_id"] = envelope_id
            await api.send_envelope(envelope)
        await api.wait_for(lambda: len({c["channel"] for c in api.of("chat.update")}) == 5, timeout=20)
        assert owed_during_work and all(n >= 1 for n in owed_during_work)
        assert acked_before_model == [True] * 5
        for envelope_id, i in zip(ids, range(5)):
            first_call = min(c.at for c in api.calls if c.get("channel") == f"C{i}")
            assert api.acks[envelope_id].at <= first_call  # nothing was posted for it before its ack
    finally:
        await rig.settle()
        await rig.adapter.stop()
        await engine.stop()
        await memory.close()
        await api.stop()


async def test_http_mode_holds_back_work_while_a_request_is_being_stored_and_answered(tmp_path):
    import json

    import aiohttp

    from engine.engine import Engine, EngineConfig
    from engine.memory.store import SQLiteMemory
    from engine.personas import PersonaRegistry
    from tests.fakes import ScriptedProvider
    from tests.servers.slack_api import SlackApiServer, event_envelope, mention_event, signed_headers
    from tests.test_slack import SECRET, build_rig

    api = await SlackApiServer().start()
    memory = await SQLiteMemory.open(tmp_path / "m.db")
    owed_during_store: list[int] = []
    engine = Engine(memory, ScriptedProvider(fallback=lambda request: "Mondays are slow."),
                    PersonaRegistry.defaults(), EngineConfig())
    rig = await build_rig(api, tmp_path, engine=engine)
    submit = engine.submit

    async def observed_submit(task):  # the 200 is owed while the event is being stored
        owed_during_store.append(engine.intake.owed)
        return await submit(task)

    engine.submit = observed_submit  # type: ignore[method-assign]
    await engine.start()
    try:
        port = await rig.adapter.start_http(port=0, host="127.0.0.1")
        async with aiohttp.ClientSession() as http:
            for i in range(3):
                body = json.dumps(event_envelope(mention_event("sophia, why?", channel=f"C{i}")))
                headers = signed_headers(SECRET, body, content_type="application/json")
                async with http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as r:
                    assert r.status == 200
        await api.wait_for(lambda: len({c["channel"] for c in api.of("chat.update")}) == 3, timeout=20)
        assert owed_during_store == [1, 1, 1]
        assert engine.intake.owed == 0  # every answer given: nothing held back for ever
    finally:
        await rig.settle()
        await rig.adapter.stop()
        await engine.stop()
        await memory.close()
        await api.stop()


async def test_work_waits_only_for_the_acknowledgements_owed_before_it():
    from engine.intake import Intake

    intake = Intake(patience=60.0)
    first = intake.taking()
    await first.__aenter__()
    waiting = asyncio.create_task(intake.settled())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()  # the first ack is still owed
    second = intake.taking()
    await second.__aenter__()  # a later event: it must not hold back work that was waiting
    await first.__aexit__(None, None, None)
    await asyncio.wait_for(waiting, 10)
    assert intake.owed == 1
    later = asyncio.create_task(intake.settled())  # work arriving now waits for the second
    for _ in range(5):
        await asyncio.sleep(0)
    assert not later.done()
    await second.__aexit__(None, None, None)
    await asyncio.wait_for(later, 10)
    assert intake.owed == 0
    await intake.settled()  # nothing owed: returns at once
