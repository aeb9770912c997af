"""Providers through the real SDK clients, against local servers that speak the wire formats.

No mocks and no internet: `tests/servers` answers like the Anthropic and OpenAI APIs (and like an
OpenAI-compatible local server), and records what the SDKs sent. Timeouts are tiny and the
servers send `retry-after-ms: 10`, so the SDKs' own retries take milliseconds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pydantic import ValidationError

from engine.findings import Confidence, CriticFinding, PlanFinding, ResearchFinding
from engine.modes import MODES, Mode
from engine.ports import (
    ChatMessage,
    ModelRequest,
    Provider,
    ProviderError,
    ProviderRateLimited,
    ProviderRefused,
    ProviderTimeout,
    ProviderUnavailable,
)
from engine.providers import (
    AnthropicProvider,
    OfflineProvider,
    OpenAIProvider,
    StructuredLevel,
    build_provider,
)
from tests.servers import anthropic_server as anth
from tests.servers import openai_server as oai
from tests.servers.anthropic_server import AnthropicServer
from tests.servers import Scripted
from tests.servers.openai_server import OpenAIServer

pytest_plugins = ["tests.servers.fixtures"]

ANTHROPIC_KEY = "sk-ant-api03-SECRETSECRETSECRET0123456789"
OPENAI_KEY = "sk-proj-SECRETSECRETSECRET0123456789"

RESEARCH = {
    "summary": "Signups fell after the redesign.",
    "evidence": [{"claim": "Signups dropped 30% since Tuesday", "source": "your message"}],
    "patterns": ["The drop follows the redesign"],
    "hypothesis": {"statement": "The new landing page hides the signup button", "confidence": "medium"},
    "gaps": [{"question": "Did mobile signups drop too?", "needs_people": True}],
}
CRITIQUE = {
    "summary": "Check the funnel before blaming the redesign.",
    "challenges": ["Only one week of data"],
    "vulnerabilities": ["Seasonality"],
    "alternatives": [
        {"statement": "A tracking change", "why": "The analytics tag moved with the redesign"},
        {"statement": "A marketing campaign ended", "why": "Paid traffic fell on Monday"},
    ],
    "risks": ["Rolling back a good design"],
    "remaining_confidence": "low",
}


def request(schema: Mode | None = None, text: str = "Why did signups drop?", **kwargs) -> ModelRequest:
    spec = MODES[schema] if schema else None
    return ModelRequest(
        system="You are Sophia, Research and data lead of the Orchestra team.",
        messages=[ChatMessage(role="user", content=text)],
        schema_name=spec.mode.value if spec else None,
        json_schema=spec.json_schema if spec else None,
        temperature=spec.temperature if spec else 0.7,
        max_tokens=spec.max_tokens if spec else 900,
        **kwargs,
    )


def assert_safe(exc: ProviderError, *secrets: str) -> None:
    """Neither the reason, nor the exception's text, nor its traceback shows a secret."""
    shown = " ".join(
        [exc.reason, str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    )
    for secret in secrets:
        assert secret not in shown
    assert "Traceback" not in exc.reason
    assert len(exc.reason) < 300


@pytest_asyncio.fixture
async def claude(anthropic_server: AnthropicServer) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(
        api_key=ANTHROPIC_KEY, base_url=anthropic_server.base_url, model="claude-test",
        timeout=0.5, max_retries=2,
    )
    yield provider
    await provider.aclose()


@pytest_asyncio.fixture
async def gpt(openai_server: OpenAIServer) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(
        api_key=OPENAI_KEY, base_url=openai_server.base_url, model="local-model",
        timeout=0.5, max_retries=2,
    )
    yield provider
    await provider.aclose()


# --- Anthropic ------------------------------------------------------------------------------


async def test_anthropic_structured_output_is_a_forced_tool_call(claude, anthropic_server):
    anthropic_server.reply_tool(RESEARCH, usage=(120, 45))

    response = await claude.generate(request(Mode.RESEARCHER))

    finding = ResearchFinding.model_validate_json(response.text)
    assert finding.hypothesis.confidence == Confidence.MEDIUM
    assert response.usage.input_tokens == 120 and response.usage.output_tokens == 45
    assert response.model == "claude-test" and not response.offline
    sent = anthropic_server.last.body
    assert anthropic_server.last.path == "/v1/messages"
    assert sent["tools"][0]["name"] == "researcher"
    assert sent["tools"][0]["input_schema"] == MODES[Mode.RESEARCHER].json_schema
    assert sent["tool_choice"] == {"type": "tool", "name": "researcher"}
    assert sent["system"].startswith("You are Sophia")
    assert sent["messages"] == [{"role": "user", "content": "Why did signups drop?"}]
    assert sent["max_tokens"] == MODES[Mode.RESEARCHER].max_tokens
    assert "temperature" not in sent  # the SDK (API 2026-10-21) has no sampling parameters


async def test_anthropic_prose_and_the_persona_model(claude, anthropic_server):
    anthropic_server.reply_text("Hello! Signups are down because of Tuesday.")

    response = await claude.generate(request(model="claude-persona"))

    assert response.text == "Hello! Signups are down because of Tuesday."
    assert response.model == "claude-persona"
    sent = anthropic_server.last.body
    assert sent["model"] == "claude-persona"
    assert "tools" not in sent and "tool_choice" not in sent
    assert isinstance(claude, Provider)


async def test_anthropic_rate_limit_is_retried_by_the_sdk(claude, anthropic_server):
    anthropic_server.rate_limited(times=2)
    anthropic_server.reply_tool(CRITIQUE)

    response = await claude.generate(request(Mode.CRITIC))

    assert CriticFinding.model_validate_json(response.text).remaining_confidence == Confidence.LOW
    assert len(anthropic_server.requests) == 3
    assert [r.headers["x-stainless-retry-count"] for r in anthropic_server.requests] == ["0", "1", "2"]


async def test_anthropic_rate_limit_forever(claude, anthropic_server):
    anthropic_server.always(anth.error(429, "rate limited"))

    with pytest.raises(ProviderRateLimited) as caught:
        await claude.generate(request(Mode.RESEARCHER))

    assert caught.value.reason == "The model provider is rate-limiting us (429) even after 2 retries."
    assert len(anthropic_server.requests) == 3
    assert_safe(caught.value, ANTHROPIC_KEY)


@pytest.mark.parametrize("status", [500, 529])
async def test_anthropic_server_errors_are_retried_then_unavailable(claude, anthropic_server, status):
    anthropic_server.always(anth.error(status, "boom"))

    with pytest.raises(ProviderUnavailable) as caught:
        await claude.generate(request())

    assert str(status) in caught.value.reason and "2 retries" in caught.value.reason
    assert len(anthropic_server.requests) == 3


async def test_anthropic_server_error_then_success(claude, anthropic_server):
    anthropic_server.server_error(times=1)
    anthropic_server.reply_text("Recovered.")

    assert (await claude.generate(request())).text == "Recovered."
    assert len(anthropic_server.requests) == 2


async def test_anthropic_timeout(anthropic_server):
    provider = AnthropicProvider(ANTHROPIC_KEY, anthropic_server.base_url, "claude-test", timeout=0.2, max_retries=0)
    anthropic_server.slow(3.0)
    try:
        with pytest.raises(ProviderTimeout) as caught:
            await provider.generate(request())
    finally:
        await provider.aclose()
    assert caught.value.reason == "The model took longer than 0.2 s to answer."


async def test_anthropic_malformed_json_reaches_the_repair_loop(claude, anthropic_server):
    # A reply without the tool call: the text is passed on, and validation (ours) fails.
    anthropic_server.reply_text('Sure! {"summary": "half a finding", "evidence": [')
    response = await claude.generate(request(Mode.RESEARCHER))
    assert response.text.startswith('{"summary": "half a finding"')
    with pytest.raises(ValidationError):
        ResearchFinding.model_validate_json(response.text)

    # A tool call whose input misses fields: valid JSON that the pydantic model rejects.
    anthropic_server.reply_tool({"summary": "no evidence"})
    response = await claude.generate(request(Mode.RESEARCHER))
    assert json.loads(response.text) == {"summary": "no evidence"}
    with pytest.raises(ValidationError):
        ResearchFinding.model_validate_json(response.text)


async def test_anthropic_refusal(claude, anthropic_server):
    anthropic_server.reply_refusal(category="cyber")

    with pytest.raises(ProviderRefused) as caught:
        await claude.generate(request(Mode.RESEARCHER))

    assert caught.value.reason == "The model declined to answer this request (policy category: cyber)."
    assert caught.value.kind == "refused"


async def test_anthropic_bad_key_never_shows_the_key(claude, anthropic_server):
    anthropic_server.push(anth.error(401, f"invalid x-api-key {ANTHROPIC_KEY}"))

    with pytest.raises(ProviderUnavailable) as caught:
        await claude.generate(request())

    assert "check the API key (ANTHROPIC_API_KEY)" in caught.value.reason
    assert anthropic_server.last.headers["Authorization"] == f"Bearer {ANTHROPIC_KEY}"
    assert_safe(caught.value, ANTHROPIC_KEY)


async def test_anthropic_bad_request_reason_is_short_and_scrubbed(claude, anthropic_server):
    anthropic_server.push(anth.error(400, f"max_tokens too large; your key {ANTHROPIC_KEY} and sk-other-0123456789 " + "x" * 500))

    with pytest.raises(ProviderError) as caught:
        await claude.generate(request())

    assert type(caught.value) is ProviderError
    assert caught.value.reason.startswith("The Anthropic API rejected the request (400): max_tokens too large")
    assert_safe(caught.value, ANTHROPIC_KEY, "sk-other-0123456789")
    assert len(anthropic_server.requests) == 1  # 400 is not retried


async def test_anthropic_unknown_model(claude, anthropic_server):
    anthropic_server.push(anth.error(404, "model: claude-nope"))
    with pytest.raises(ProviderError) as caught:
        await claude.generate(request(model="claude-nope"))
    assert "'claude-nope'" in caught.value.reason and "ORCHESTRA_ANTHROPIC_MODEL" in caught.value.reason


async def test_anthropic_unreachable():
    server = await AnthropicServer().start()
    url = server.base_url
    await server.stop()  # nothing listens there now
    provider = AnthropicProvider(ANTHROPIC_KEY, url, "claude-test", timeout=0.5, max_retries=0)
    try:
        with pytest.raises(ProviderUnavailable) as caught:
            await provider.generate(request())
    finally:
        await provider.aclose()
    # where it looked is for the log; the chat hears what happened and who can fix it
    assert "127.0.0.1" not in caught.value.reason and str(server.port) not in caught.value.reason
    assert caught.value.reason.startswith("I could not reach the Anthropic API.") and "ANTHROPIC_BASE_URL" in caught.value.reason


# --- OpenAI ---------------------------------------------------------------------------------


async def test_openai_structured_output_round_trip(gpt, openai_server):
    openai_server.reply_json(CRITIQUE, usage=(300, 80))

    response = await gpt.generate(request(Mode.CRITIC))

    assert len(CriticFinding.model_validate_json(response.text).alternatives) == 2
    assert response.usage.input_tokens == 300 and response.usage.output_tokens == 80
    assert response.model == "local-model"
    sent = openai_server.last.body
    assert openai_server.last.path == "/v1/chat/completions"
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "critic", "schema": MODES[Mode.CRITIC].json_schema, "strict": True},
    }
    assert sent["messages"][0] == {"role": "system", "content": request().system}
    assert sent["messages"][1] == {"role": "user", "content": "Why did signups drop?"}
    assert sent["temperature"] == MODES[Mode.CRITIC].temperature
    assert sent["max_tokens"] == MODES[Mode.CRITIC].max_tokens  # a compatible server: max_tokens
    assert gpt.structured_level == StructuredLevel.JSON_SCHEMA


async def test_openai_prose(gpt, openai_server):
    openai_server.reply_text("Signups dipped after the redesign.")

    response = await gpt.generate(request(model="persona-model"))

    assert response.text == "Signups dipped after the redesign."
    assert openai_server.last.body["model"] == "persona-model"
    assert "response_format" not in openai_server.last.body
    assert isinstance(gpt, Provider)


async def test_openai_fenced_json_is_unwrapped(gpt, openai_server):
    openai_server.reply_text("Here it is:\n```json\n" + json.dumps(RESEARCH) + "\n```\nAnything else?")
    response = await gpt.generate(request(Mode.RESEARCHER))
    assert ResearchFinding.model_validate_json(response.text).summary == RESEARCH["summary"]


async def test_openai_rate_limit_is_retried_by_the_sdk(gpt, openai_server):
    openai_server.rate_limited(times=2)
    openai_server.reply_json(RESEARCH)

    response = await gpt.generate(request(Mode.RESEARCHER))

    assert ResearchFinding.model_validate_json(response.text)
    assert len(openai_server.requests) == 3


async def test_openai_rate_limit_forever(gpt, openai_server):
    openai_server.always(oai.error(429, "Rate limit reached", type="requests"))

    with pytest.raises(ProviderRateLimited) as caught:
        await gpt.generate(request())

    assert caught.value.reason == "The model provider is rate-limiting us (429) even after 2 retries."
    assert len(openai_server.requests) == 3
    assert_safe(caught.value, OPENAI_KEY)


async def test_openai_server_error_is_retried_then_unavailable(gpt, openai_server):
    openai_server.always(oai.error(500, "The server had an error", type="server_error"))

    with pytest.raises(ProviderUnavailable) as caught:
        await gpt.generate(request(Mode.PLANNER))

    assert caught.value.reason == "The model server had a server error (500) even after 2 retries."
    assert len(openai_server.requests) == 3
    assert gpt.structured_level == StructuredLevel.JSON_SCHEMA  # a 500 is no reason to step down


async def test_openai_timeout(openai_server):
    provider = OpenAIProvider(OPENAI_KEY, openai_server.base_url, "local-model", timeout=0.2, max_retries=1)
    openai_server.slow(3.0)
    openai_server.slow(3.0)
    try:
        with pytest.raises(ProviderTimeout) as caught:
            await provider.generate(request())
    finally:
        await provider.aclose()
    assert caught.value.reason == "The model took longer than 0.2 s to answer (tried 2 times)."
    assert len(openai_server.requests) == 2


async def test_openai_malformed_json_is_returned_as_text(gpt, openai_server):
    openai_server.reply_text('{"summary": "cut off", "evidence": [{"claim": ')

    response = await gpt.generate(request(Mode.RESEARCHER))

    assert response.text == '{"summary": "cut off", "evidence": [{"claim":'
    with pytest.raises(ValidationError):
        ResearchFinding.model_validate_json(response.text)


async def test_openai_refusal(gpt, openai_server):
    openai_server.reply_refusal("I can't help with that request.")

    with pytest.raises(ProviderRefused) as caught:
        await gpt.generate(request(Mode.RESEARCHER))

    assert caught.value.reason == "The model declined to answer: I can't help with that request."


async def test_openai_content_filter_is_a_refusal(gpt, openai_server):
    openai_server.reply_text(None, finish_reason="content_filter")
    with pytest.raises(ProviderRefused):
        await gpt.generate(request())


async def test_openai_compatible_server_falls_back_to_json_object(gpt, openai_server):
    openai_server.act_like_local_server(json_object=True, text=json.dumps(RESEARCH))

    first = await gpt.generate(request(Mode.RESEARCHER))

    assert ResearchFinding.model_validate_json(first.text)
    kinds = [r.body["response_format"]["type"] for r in openai_server.requests]
    assert kinds == ["json_schema", "json_object"]
    system = openai_server.last.body["messages"][0]["content"]
    assert system.startswith("You are Sophia") and '"hypothesis"' in system and "JSON Schema" in system
    assert gpt.structured_level == StructuredLevel.JSON_OBJECT

    # The next call goes straight to the level that worked.
    second = await gpt.generate(request(Mode.RESEARCHER, text="And on mobile?"))
    assert ResearchFinding.model_validate_json(second.text)
    assert len(openai_server.requests) == 3
    assert openai_server.last.body["response_format"] == {"type": "json_object"}


async def test_openai_compatible_server_falls_back_to_plain_text(gpt, openai_server):
    reply = "Sure, here is my finding:\n```json\n" + json.dumps(CRITIQUE) + "\n```"
    openai_server.act_like_local_server(json_object=False, text=reply)

    response = await gpt.generate(request(Mode.CRITIC))

    assert CriticFinding.model_validate_json(response.text)
    bodies = openai_server.bodies
    assert [b.get("response_format", {}).get("type") for b in bodies] == ["json_schema", "json_object", None]
    assert '"alternatives"' in bodies[-1]["messages"][0]["content"]
    assert gpt.structured_level == StructuredLevel.PROMPT

    # Prose is unaffected, and later structured calls go straight to plain text.
    await gpt.generate(request())
    await gpt.generate(request(Mode.CRITIC))
    assert "response_format" not in openai_server.bodies[-1]
    assert len(openai_server.requests) == 5


@pytest.mark.parametrize("status", [422, 501])
async def test_openai_compatible_server_without_response_format(gpt, openai_server, status):
    openai_server.push(oai.error(status, "Unprocessable"), *([oai.error(status, "Not implemented")] * 2 if status == 501 else []))
    openai_server.reply_json(RESEARCH)

    response = await gpt.generate(request(Mode.RESEARCHER))

    assert ResearchFinding.model_validate_json(response.text)
    assert gpt.structured_level == StructuredLevel.JSON_OBJECT


async def test_openai_bad_request_unrelated_to_the_format_is_an_error(gpt, openai_server):
    openai_server.push(oai.error(400, "This model's maximum context length is 8192 tokens", param="messages"))

    with pytest.raises(ProviderError) as caught:
        await gpt.generate(request(Mode.RESEARCHER))

    assert caught.value.reason == (
        "The model server rejected the request (400): This model's maximum context length is 8192 tokens"
    )
    assert gpt.structured_level == StructuredLevel.JSON_SCHEMA
    assert len(openai_server.requests) == 1


async def test_openai_model_without_temperature(gpt, openai_server):
    openai_server.push(
        oai.error(
            400,
            "Unsupported value: 'temperature' does not support 0.4 with this model. "
            "Only the default (1) value is supported.",
            param="temperature",
            code="unsupported_value",
        )
    )
    openai_server.reply_json(RESEARCH)
    openai_server.reply_json(RESEARCH)

    await gpt.generate(request(Mode.RESEARCHER))
    await gpt.generate(request(Mode.RESEARCHER))

    assert ["temperature" in b for b in openai_server.bodies] == [True, False, False]


async def test_openai_without_key_for_a_local_server(openai_server):
    provider = build_provider("openai", openai_api_key=None, openai_base_url=openai_server.base_url,
                              openai_model="llama3", timeout=1, max_retries=0)
    try:
        response = await provider.generate(request())
    finally:
        await provider.aclose()
    assert response.text == "Hello from the local OpenAI server."
    assert openai_server.last.headers["Authorization"] == "Bearer not-needed"


async def test_openai_bad_key_never_shows_the_key(gpt, openai_server):
    openai_server.push(oai.error(401, f"Incorrect API key provided: {OPENAI_KEY}.", code="invalid_api_key"))

    with pytest.raises(ProviderUnavailable) as caught:
        await gpt.generate(request())

    assert "check the API key (OPENAI_API_KEY)" in caught.value.reason
    assert_safe(caught.value, OPENAI_KEY)


async def test_openai_real_api_uses_max_completion_tokens():
    provider = OpenAIProvider(OPENAI_KEY, None, "gpt-5.4-mini", timeout=1, max_retries=0)
    try:
        params = provider._params(request(Mode.RESEARCHER), "gpt-5.4-mini", StructuredLevel.JSON_SCHEMA)
    finally:
        await provider.aclose()
    assert params["max_completion_tokens"] == MODES[Mode.RESEARCHER].max_tokens
    assert "max_tokens" not in params
    assert "temperature" not in params  # reasoning models only take their default


# --- offline --------------------------------------------------------------------------------

MEMORY_PROMPT = """You are Karen, Sales, marketing and projects lead of the Orchestra team.

Channel memory (earlier work in this channel, most relevant first):
- Last quarter the trial-to-paid rate fell after the pricing page changed.
- Mobile users complained about the checkout form.

Task: investigate"""

QUESTIONS = [
    "Why did our signups drop 30% since Tuesday? The landing page was redesigned on Monday.",
    "Checkout errors spiked for EU customers after the payment provider migration last night",
    "why?",
    "",
]


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("system", ["You are Sophia, Research and data lead.", MEMORY_PROMPT, ""])
async def test_offline_findings_validate(mode, question, system):
    provider = OfflineProvider()
    req = ModelRequest(system=system, messages=[ChatMessage(role="user", content=question)],
                       schema_name=mode.value, json_schema=MODES[mode].json_schema)

    response = await provider.generate(req)

    MODES[mode].schema.model_validate_json(response.text)
    assert response.offline and response.model == "offline"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


async def test_offline_evidence_quotes_the_message_and_the_memory():
    question = QUESTIONS[0]
    req = ModelRequest(system=MEMORY_PROMPT, messages=[ChatMessage(role="user", content=question)],
                       schema_name="researcher", json_schema=MODES[Mode.RESEARCHER].json_schema)

    finding = ResearchFinding.model_validate_json((await OfflineProvider().generate(req)).text)

    from_message = [e.claim for e in finding.evidence if e.source == "your message"]
    from_memory = [e.claim for e in finding.evidence if e.source == "channel memory"]
    assert from_message and all(claim in question for claim in from_message)
    assert from_memory == [
        "Last quarter the trial-to-paid rate fell after the pricing page changed.",
        "Mobile users complained about the checkout form.",
    ]
    assert finding.hypothesis.confidence == Confidence.MEDIUM
    assert finding.gaps and not any(g.needs_people for g in finding.gaps)


async def test_offline_reads_an_investigation_turn_as_the_engine_sends_it():
    from engine.personas import PersonaRegistry, render_prompt

    sophia = PersonaRegistry.defaults().get("sophia")
    system = render_prompt(
        sophia, mode=MODES[Mode.RESEARCHER].instructions(), task="intermittent 401s on checkout",
        memory="- 2026-11-20 «login errors» sophia (researcher): The auth proxy was upgraded on Monday.",
    )
    context = (
        "Investigation inv-1 (security): intermittent 401s on checkout\n"
        "Phase: discovery. This is turn 3 of at most 10.\n\n"
        "Thread so far:\n[1] Person (U1):\nintermittent 401s on checkout\n\n"
        "[2] Sophia, researcher:\nHypothesis (low confidence): token expiry.\n\n"
        "[3] Person (U1):\nOnly EU customers see it. It started after Monday's deploy.\n\n"
        "Now do your researcher turn on this investigation."
    )
    req = ModelRequest(system=system, messages=[ChatMessage(role="user", content=context)],
                       schema_name="researcher", json_schema=MODES[Mode.RESEARCHER].json_schema)

    finding = ResearchFinding.model_validate_json((await OfflineProvider().generate(req)).text)

    assert [(e.claim, e.source) for e in finding.evidence] == [
        ("Only EU customers see it.", "your message"),
        ("It started after Monday's deploy.", "your message"),
        ("The auth proxy was upgraded on Monday.", "channel memory"),
        ("intermittent 401s on checkout", "the question"),
    ]
    assert "“intermittent 401s on checkout”" in finding.hypothesis.statement
    assert finding.hypothesis.confidence == Confidence.MEDIUM


async def test_offline_confidence_follows_the_substance():
    async def research(text: str) -> ResearchFinding:
        req = request(Mode.RESEARCHER, text=text)
        return ResearchFinding.model_validate_json((await OfflineProvider().generate(req)).text)

    thin = await research("why?")
    assert thin.hypothesis.confidence == Confidence.LOW
    assert any(g.needs_people for g in thin.gaps)  # only the people can add substance
    rich = await research(QUESTIONS[1])
    assert rich.hypothesis.confidence == Confidence.MEDIUM

    critique = CriticFinding.model_validate_json((await OfflineProvider().generate(request(Mode.CRITIC, text=QUESTIONS[1]))).text)
    assert critique.remaining_confidence == Confidence.MEDIUM
    plan = PlanFinding.model_validate_json((await OfflineProvider().generate(request(Mode.PLANNER, text=QUESTIONS[1]))).text)
    assert all(p.success_criteria for p in plan.phases) and all(r.mitigation for r in plan.risks)
    assert plan.metrics


async def test_offline_is_deterministic_and_varies_with_the_input():
    provider = OfflineProvider()
    for mode in Mode:
        texts = [(await provider.generate(request(mode, text=q))).text for q in QUESTIONS[:2] * 2]
        assert texts[0] == texts[2] and texts[1] == texts[3]
        assert texts[0] != texts[1]
    # Deterministic across processes too (no hash randomisation).
    code = (
        "from engine.providers import OfflineProvider\n"
        "from engine.ports import ModelRequest, ChatMessage\n"
        "from engine.modes import MODES, Mode\n"
        f"r = ModelRequest(system='', messages=[ChatMessage(role='user', content={QUESTIONS[1]!r})],"
        " schema_name='critic', json_schema=MODES[Mode.CRITIC].json_schema)\n"
        "print(OfflineProvider().answer(r).text)\n"
    )
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    here = OfflineProvider().answer(
        ModelRequest(system="", messages=[ChatMessage(role="user", content=QUESTIONS[1])],
                     schema_name="critic", json_schema=MODES[Mode.CRITIC].json_schema)
    ).text
    assert runs == {here + "\n"}


async def test_offline_prose_is_an_honest_rehearsal_in_her_voice():
    req = ModelRequest(system=MEMORY_PROMPT, messages=[ChatMessage(role="user", content="Should we raise prices?")])

    response = await OfflineProvider().generate(req)

    assert "“Should we raise prices?”" in response.text
    assert "rehearsing" in response.text  # honest, in her words
    # how to connect a model is said once per thread by the engine, not in every answer
    assert not any(s in response.text for s in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"))
    assert "customer" in response.text  # Karen's voice
    assert response.offline
    with pytest.raises(ValueError):
        json.loads(response.text)


def persona_request(name: str, mode: Mode | None, text: str, memory: str = "") -> ModelRequest:
    from engine.personas import PersonaRegistry, render_prompt
    from engine.turns import CONVERSATION_INSTRUCTIONS

    persona = PersonaRegistry.defaults().get(name)
    spec = MODES[mode] if mode else None
    system = render_prompt(persona, mode=spec.instructions() if spec else CONVERSATION_INSTRUCTIONS, task=text, memory=memory)
    return ModelRequest(system=system, messages=[ChatMessage(role="user", content=text)],
                        schema_name=mode.value if mode else None, json_schema=spec.json_schema if spec else None)


VOICE_QUESTION = "Checkout fails since 00:00 UTC: the payment gateway returns 502 for about 1,000 orders an hour."
NAMES = ("sophia", "karen", "cherry")


@pytest.mark.parametrize("mode", [None, *Mode])
async def test_offline_personas_have_voices_a_reader_can_tell_apart(mode):
    provider = OfflineProvider()
    texts = {n: (await provider.generate(persona_request(n, mode, VOICE_QUESTION))).text for n in NAMES}
    if mode is not None:  # compare what a person reads: the finding's words
        from engine.render import render_finding
        texts = {n: render_finding(mode.value, json.loads(t)) for n, t in texts.items()}
    assert len(set(texts.values())) == 3, texts
    again = {n: (await provider.generate(persona_request(n, mode, VOICE_QUESTION))).text for n in NAMES}
    if mode is not None:
        again = {n: render_finding(mode.value, json.loads(t)) for n, t in again.items()}
    assert again == texts  # deterministic, voice and all
    sophia, karen, cherry = (texts[n] for n in NAMES)
    own = lambda t: t.replace(VOICE_QUESTION, "")  # noqa: E731 - her words, not the quoted question
    # Karen (formality 0.25, humour 0.75): casual, exclamations, contractions, the customer
    assert "!" in own(karen) and re.search(r"\b\w+'(s|d|re|ll|t)\b", own(karen))
    # Sophia (formality 0.8, humour 0.15): formal, no exclamations or contractions, and the longest
    assert "!" not in own(sophia) and not re.search(r"\b\w+'(s|d|re|ll|t)\b", own(sophia))
    assert len(sophia) > len(karen)
    if mode in (None, Mode.RESEARCHER, Mode.CRITIC):
        assert "customer" in karen.lower()
    if mode is None:
        assert "\n1. " in cherry and "owner" in cherry  # Cherry: numbered priorities, owners
    if mode == Mode.PLANNER:
        assert "owner" in cherry.lower() and "decision point" in cherry.lower()


async def test_offline_keeps_peoples_evidence_whole():
    provider = OfflineProvider()
    for name in NAMES:
        finding = ResearchFinding.model_validate_json((await provider.generate(persona_request(name, Mode.RESEARCHER, VOICE_QUESTION))).text)
        claims = [e.claim for e in finding.evidence if e.source == "your message"]
        assert claims == [VOICE_QUESTION], claims  # one sentence: quoted whole, "00:00" and "1,000" intact
        critique = CriticFinding.model_validate_json((await provider.generate(persona_request(name, Mode.CRITIC, VOICE_QUESTION))).text)
        assert any(VOICE_QUESTION in c for c in critique.challenges)
    long = ("At 00:00 UTC the gateway began returning 502 for card payments in the EU region, " * 3).strip()
    finding = ResearchFinding.model_validate_json((await provider.generate(persona_request("sophia", Mode.RESEARCHER, long))).text)
    assert all("00:00 UTC" in e.claim for e in finding.evidence if e.source == "your message")


async def test_offline_plan_starts_with_the_checks_still_open():
    context = (
        "Investigation inv-1 (debugging): checkout fails\nPhase: planning. This is turn 4 of at most 10.\n\n"
        "Thread so far:\n[1] Person (U1):\ncheckout fails since 00:00 UTC\n\n"
        "Checks still open (the critic's challenges and the research gaps). The first phase of your plan must cover each of them:\n"
        "- no logs from the gateway\n- which region?\n\n"
        "Now do your planner turn on this investigation."
    )
    for name in NAMES:
        req = persona_request(name, Mode.PLANNER, "checkout fails since 00:00 UTC")
        req = req.model_copy(update={"messages": [ChatMessage(role="user", content=context)]})
        plan = PlanFinding.model_validate_json((await OfflineProvider().generate(req)).text)
        assert plan.phases[0].steps[:2] == ["Check: no logs from the gateway", "Check: which region?"]
        assert any("00:00 UTC" in s for s in plan.phases[0].steps)  # the person's words, whole


async def test_offline_fills_an_unknown_schema():
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
              "score": {"type": "integer"}}, "required": ["title", "tags", "score"]}
    req = ModelRequest(system="", messages=[ChatMessage(role="user", content="Summarise the week")],
                       schema_name="summary", json_schema=schema)
    assert json.loads((await OfflineProvider().generate(req)).text) == {
        "title": "Summarise the week", "tags": ["Summarise the week"], "score": 0}


# --- building -------------------------------------------------------------------------------


async def test_build_provider():
    offline = build_provider("offline")
    assert isinstance(offline, OfflineProvider) and isinstance(offline, Provider)
    claude = build_provider("anthropic", anthropic_api_key="k", anthropic_base_url="http://127.0.0.1:9",
                            anthropic_model="claude-x", timeout=3, max_retries=1)
    gpt = build_provider("openai", openai_api_key="k", openai_model="gpt-x", timeout=3, max_retries=1)
    assert (claude.name, claude.model, claude.timeout, claude.max_retries) == ("anthropic", "claude-x", 3, 1)
    assert (gpt.name, gpt.model) == ("openai", "gpt-x")
    for provider in (offline, claude, gpt):
        await provider.aclose()
    with pytest.raises(ValueError, match="unknown provider"):
        build_provider("cohere")


async def test_missing_credentials_fail_at_build_time(monkeypatch, tmp_path):
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "OPENAI_API_KEY",
                 "OPENAI_ADMIN_KEY", "ANTHROPIC_IDENTITY_TOKEN", "ANTHROPIC_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ANTHROPIC_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no profile on disk either
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(ProviderUnavailable, match="set ANTHROPIC_API_KEY"):
        build_provider("anthropic")
    with pytest.raises(ProviderUnavailable, match="set OPENAI_API_KEY, or OPENAI_BASE_URL"):
        build_provider("openai")


def test_importing_providers_does_not_import_the_sdks():
    code = "import sys, engine.providers; print('anthropic' in sys.modules, 'openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("reply", [
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}}]},
    {"choices": ["not an object"]},
    {"choices": [{"index": 0, "message": "not an object", "finish_reason": "stop"}]},
])
async def test_openai_reply_of_an_unexpected_shape_is_a_clear_provider_error(gpt, openai_server, reply):
    """A compatible server's reply read field by field: a part in another shape counts as missing
    (the SDK's models were built leniently, and `.strip()` on a list escaped as a bug)."""
    openai_server.push(Scripted(body=reply))
    with pytest.raises(ProviderError) as caught:
        await gpt.generate(request())
    assert caught.value.reason in ("The model sent an empty answer.", "The model sent no answer.")


@pytest.mark.parametrize("reply", [
    {"type": "message", "content": "not a list of blocks", "stop_reason": "end_turn"},
    {"type": "message", "content": ["not a block", {"type": "text", "text": ["not", "text"]}], "stop_reason": "end_turn"},
    {"type": "message", "content": [{"type": "tool_use", "name": "finding"}], "stop_reason": "tool_use"},
    ["not", "a", "message"],
])
async def test_anthropic_reply_of_an_unexpected_shape_is_a_clear_provider_error(claude, anthropic_server, reply):
    """The reply is read field by field as the JSON sent (a proxy may send anything): a part in
    another shape counts as missing, and what is left is an empty answer, never a crash."""
    anthropic_server.push(Scripted(body=reply))
    with pytest.raises(ProviderError) as caught:
        await claude.generate(request(Mode.RESEARCHER))
    assert caught.value.reason == "The model sent an empty answer."


async def test_anthropic_usage_counts_cached_input_and_the_model_named_by_the_reply(claude, anthropic_server):
    body = anth.message([{"type": "text", "text": "Signups are down."}], model="claude-served")
    body["usage"].update(cache_creation_input_tokens=5, cache_read_input_tokens=7)
    anthropic_server.push(Scripted(body=body))
    response = await claude.generate(request())
    assert (response.text, response.model) == ("Signups are down.", "claude-served")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (31 + 5 + 7, 12)
