"""The engine with the real OpenAI and Anthropic clients against local wire-format servers:
what a person sees in the thread when the model misbehaves."""

import json

import pytest

from engine.engine import Engine, EngineConfig
from engine.memory import SQLiteMemory
from engine.memory.records import ThreadStatus
from engine.models import ReplyKind, Task, TaskKind
from engine.personas import PersonaRegistry
from engine.providers.anthropic_provider import AnthropicProvider
from engine.providers.openai_provider import OpenAIProvider
from tests.fakes import FakeOutbox, critique, plan, research

pytest_plugins = ["tests.servers.fixtures"]

KEY = "sk-test-0123456789abcdefSECRET"


@pytest.fixture
async def memory(tmp_path):
    mem = await SQLiteMemory.open(tmp_path / "o.db")
    yield mem
    await mem.close()


def investigation(text: str, n: int = 1) -> Task:
    return Task(platform="test", workspace="W", channel="C", user="U", text=text, event_id=f"e{n}", kind=TaskKind.INVESTIGATE)


async def run(memory, provider, task: Task) -> tuple:
    engine = Engine(memory, provider, PersonaRegistry.defaults(), EngineConfig(max_auto_turns=3))
    outbox = FakeOutbox()
    engine.register_outbox("test", outbox)
    rec = await engine.run(task)
    await provider.aclose()
    return rec, outbox


async def test_openai_investigation_end_to_end_with_usage(memory, openai_server):
    openai_server.reply_json(research())
    openai_server.reply_json(critique())
    openai_server.reply_json(plan())
    provider = OpenAIProvider(KEY, openai_server.base_url, "gpt-test", timeout=2, max_retries=0)
    rec, outbox = await run(memory, provider, investigation("intermittent 401s on checkout"))
    assert rec.status == ThreadStatus.COMPLETE
    assert [r.voice.name for r in outbox.turns()] == ["sophia", "karen", "cherry"]
    first = openai_server.requests[0].body
    assert first["response_format"]["type"] == "json_schema" and "You are Sophia" in first["messages"][0]["content"]
    turns = [t for t in await memory.turns(rec.id) if t.mode]
    assert all(t.input_tokens > 0 and t.output_tokens > 0 for t in turns)


async def test_malformed_json_twice_is_posted_as_unstructured(memory, openai_server):
    openai_server.reply_text('{"summary": "cut off', finish_reason="length")
    openai_server.reply_text("Sorry, here is prose instead of JSON.")
    openai_server.always(None)
    provider = OpenAIProvider(KEY, openai_server.base_url, "gpt-test", timeout=2, max_retries=0)
    rec, outbox = await run(memory, provider, investigation("why is the build flaky"))
    turn = outbox.turns()[0]
    assert not turn.structured and "Unstructured answer" in turn.text and "prose instead of JSON" in turn.text
    assert "did not pass validation" in json.dumps(openai_server.requests[1].body)


async def test_timeout_is_told_in_the_personas_voice_without_secrets(memory, openai_server):
    openai_server.slow(1.0)
    provider = OpenAIProvider(KEY, openai_server.base_url, "gpt-test", timeout=0.2, max_retries=0)
    rec, outbox = await run(memory, provider, investigation("why is the build flaky"))
    error = outbox.posts[-1]
    assert error.kind == ReplyKind.ERROR and error.voice.name == "sophia"
    assert "continue" in error.text and KEY not in error.text and "Traceback" not in error.text
    assert rec.status == ThreadStatus.PAUSED


async def test_rate_limit_after_retries_then_resume(memory, anthropic_server):
    anthropic_server.rate_limited(times=2)
    provider = AnthropicProvider(KEY, anthropic_server.base_url, "claude-test", timeout=2, max_retries=1)
    rec, outbox = await run(memory, provider, investigation("why is the build flaky"))
    assert outbox.posts[-1].kind == ReplyKind.ERROR and "429" in outbox.posts[-1].text
    assert len(anthropic_server.requests) == 2  # the SDK retried once; we did not add a loop


async def test_refusal_is_reported(memory, anthropic_server):
    anthropic_server.reply_refusal()
    provider = AnthropicProvider(KEY, anthropic_server.base_url, "claude-test", timeout=2, max_retries=0)
    _, outbox = await run(memory, provider, investigation("why is the build flaky"))
    assert outbox.posts[-1].kind == ReplyKind.ERROR and KEY not in outbox.posts[-1].text


async def test_stuck_confidence_through_the_openai_client_ends_in_a_plan_with_the_open_checks(memory, openai_server):
    """The critic keeps knocking the hypothesis down: no endless ping-pong, a plan that starts with
    what the critic said is still unchecked, all through the real SDK and the wire format."""
    openai_server.reply_json(research("medium"))
    openai_server.reply_json(critique("low"))
    openai_server.reply_json(research("medium"))
    openai_server.reply_json(plan())
    provider = OpenAIProvider(KEY, openai_server.base_url, "gpt-test", timeout=2, max_retries=0)
    engine = Engine(memory, provider, PersonaRegistry.defaults(), EngineConfig())  # default limits
    outbox = FakeOutbox()
    engine.register_outbox("test", outbox)
    rec = await engine.run(investigation("why do some orders fail"))
    await provider.aclose()
    assert rec.status == ThreadStatus.COMPLETE
    assert [r.mode for r in outbox.turns()] == ["researcher", "critic", "researcher", "planner"]
    planner_prompt = json.dumps(openai_server.requests[-1].body)
    assert "Checks still open" in planner_prompt and "no logs from the gateway" in planner_prompt
