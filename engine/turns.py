"""One persona turn: compose the prompt, call the model, check the finding, repair once.

A finding that fails validation is sent back once with the errors. If the second answer fails
too, the turn is kept and posted as *unstructured*, clearly marked: never silently accepted,
never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from engine.findings import extract_json, validation_problems
from engine.modes import CONVERSATION_MAX_TOKENS, CONVERSATION_TEMPERATURE, MODES, Mode
from engine.observe import speaking
from engine.personas import Persona, render_prompt
from engine.ports import ChatMessage, ModelRequest, ModelResponse, Provider, Usage
from engine.render import render_finding

CONVERSATION_INSTRUCTIONS = (
    "You are answering a question in a chat thread. Answer in your own voice, directly and "
    "briefly (a few short paragraphs at most). Use the channel memory when it helps and say so. "
    "If you are unsure, say what you would need to know."
)


@dataclass
class TurnOutcome:
    mode: str  # researcher / critic / planner / conversation
    text: str  # plain text for people and for memory
    finding: dict[str, Any] | None  # validated finding (None: prose, or unstructured)
    structured: bool
    problems: list[str] = field(default_factory=list)  # why it is unstructured
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    offline: bool = False


def parse_json_object(text: str) -> Any:
    """The JSON object in a model's reply, tolerating ```json fences and chatter around it."""
    return json.loads(extract_json(text))


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(input_tokens=a.input_tokens + b.input_tokens, output_tokens=a.output_tokens + b.output_tokens)


def _check(mode: Mode, text: str) -> tuple[dict[str, Any] | None, list[str]]:
    schema = MODES[mode].schema
    try:
        data = parse_json_object(text)
    except (json.JSONDecodeError, ValueError) as e:
        return None, [f"the reply is not valid JSON ({e.__class__.__name__}: {e})"]
    try:
        return schema.model_validate(data).model_dump(mode="json"), []
    except ValidationError as e:
        return None, validation_problems(e)


async def structured_turn(
    provider: Provider, persona: Persona, mode: Mode, *, task: str, memory: str, context: str
) -> TurnOutcome:
    speaking.set(persona.name)  # model calls are counted by persona (engine.observe)
    spec = MODES[mode]
    system = render_prompt(persona, mode=spec.instructions(), task=task, memory=memory)
    messages = [ChatMessage(role="user", content=context)]
    request = ModelRequest(
        system=system,
        messages=messages,
        schema_name=mode.value,
        json_schema=spec.json_schema,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        model=persona.model,
    )
    first: ModelResponse = await provider.generate(request)
    finding, problems = _check(mode, first.text)
    usage, last = first.usage, first
    if finding is None:
        repair = "\n".join(f"- {p}" for p in problems)
        retry = request.model_copy(
            update={
                "messages": [
                    *messages,
                    ChatMessage(role="assistant", content=first.text or "(empty)"),
                    ChatMessage(
                        role="user",
                        content=f"That answer did not pass validation:\n{repair}\n"
                        "Answer again with corrected JSON only, matching the schema.",
                    ),
                ]
            }
        )
        last = await provider.generate(retry)
        usage = _add(usage, last.usage)
        finding, problems = _check(mode, last.text)
    if finding is not None:
        return TurnOutcome(
            mode=mode.value,
            text=render_finding(mode.value, finding),
            finding=finding,
            structured=True,
            usage=usage,
            model=last.model,
            offline=last.offline,
        )
    raw = last.text.strip() or "(the model returned nothing)"
    return TurnOutcome(
        mode=mode.value,
        text=raw[:6000],
        finding=None,
        structured=False,
        problems=problems,
        usage=usage,
        model=last.model,
        offline=last.offline,
    )


async def conversation_turn(
    provider: Provider, persona: Persona, *, question: str, memory: str, history: list[ChatMessage]
) -> TurnOutcome:
    speaking.set(persona.name)
    system = render_prompt(persona, mode=CONVERSATION_INSTRUCTIONS, task=question, memory=memory)
    request = ModelRequest(
        system=system,
        messages=[*history, ChatMessage(role="user", content=question)],
        temperature=CONVERSATION_TEMPERATURE,
        max_tokens=CONVERSATION_MAX_TOKENS,
        model=persona.model,
    )
    response = await provider.generate(request)
    answered = bool(response.text.strip())
    return TurnOutcome(
        mode="conversation",
        text=response.text.strip() or "(no answer came back; please ask again)",
        finding=None,
        structured=answered,  # an empty reply is kept, but never recalled as what she said
        usage=response.usage,
        model=response.model,
        offline=response.offline,
    )
