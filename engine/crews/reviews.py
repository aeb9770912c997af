"""The orchestrator's two reviews of her crew, in her own voice, through the personas' model:
the plan before the crew starts, the result after it delivered. Each ends with a verdict line,
read back with `verdict` (a model that leaves it out gets the fallback, never a guess)."""

from __future__ import annotations

import re

from engine.context import memory_text
from engine.crews.team import CrewPlan
from engine.memory.records import Recollection
from engine.personas import Persona, render_prompt
from engine.ports import ChatMessage, ModelRequest, ModelResponse, Provider

_VERDICT = re.compile(r"\bverdict\**\s*[:\-]\s*\**\s*([\w -]{1,40})", re.IGNORECASE)
RESULT_CHARS = 6000  # of the crew's result, shown to the reviewer


def plan_ask(plan: CrewPlan) -> str:
    return (f"The work:\n{plan.work}\n\nThe crew you assembled:\n{plan.text()}\n\n"
            "Review this plan before the crew starts, in your own voice and in a few sentences: is this the "
            "right team and order for the work, and what should they watch out for? "
            "End with one line: “Verdict: go” or “Verdict: go with changes”.")


def result_ask(plan: CrewPlan, result: str) -> str:
    return (f"The work:\n{plan.work}\n\nYour crew ({plan.text()}) delivered:\n{result[:RESULT_CHARS]}\n\n"
            "Review the result in your own voice, in a few sentences: what is good, what is missing, what the "
            "people here should do next. End with one line: “Verdict: accepted” or “Verdict: needs work”.")


async def review(provider: Provider, lead: Persona, ask: str, recalled: list[Recollection]) -> ModelResponse:
    """One review by `lead`: raises ProviderError like any turn."""
    system = render_prompt(lead, mode="crew orchestrator", task=(
        "You assembled a crew of AI agents for this work and you review its plan and its result for the "
        "people in this thread. Speak as yourself, briefly."), memory=memory_text(recalled, 800))
    return await provider.generate(ModelRequest(
        system=system, messages=[ChatMessage(role="user", content=ask)], max_tokens=600, temperature=0.5,
        model=lead.model,
    ))


def verdict(text: str, fallback: str) -> str:
    """The last "Verdict: …" in the review, lower case; `fallback` when there is none."""
    found = _VERDICT.findall(text or "")
    return found[-1].strip().lower() if found else fallback
