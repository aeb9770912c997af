"""Reasoning modes: how a persona thinks at one turn (researcher, critic, planner).

A mode is data: its steps, the schema its finding must match, a temperature and a token
budget. The persona decides the voice; the mode decides the shape of the work.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from engine.findings import CriticFinding, PlanFinding, ResearchFinding, strict_json_schema


class Mode(StrEnum):
    RESEARCHER = "researcher"
    CRITIC = "critic"
    PLANNER = "planner"


@dataclass(frozen=True)
class ModeSpec:
    mode: Mode
    purpose: str
    steps: tuple[str, ...]
    schema: type[BaseModel]
    temperature: float
    max_tokens: int

    @property
    def json_schema(self) -> dict:
        return _SCHEMAS[self.mode]

    def instructions(self) -> str:
        steps = "\n".join(f"{i}. {s}" for i, s in enumerate(self.steps, 1))
        return (
            f"You are working in {self.mode.value} mode: {self.purpose}\n"
            f"Work through these steps:\n{steps}\n"
            "Answer only with JSON that matches the given schema."
        )


MODES: dict[Mode, ModeSpec] = {
    Mode.RESEARCHER: ModeSpec(
        mode=Mode.RESEARCHER,
        purpose="gather evidence, find patterns and form a hypothesis.",
        steps=(
            "List the evidence you have, each item with its source (the person's message, "
            "channel memory, a log, a metric). Never invent a source.",
            "Name the patterns the evidence shows.",
            "State the most likely hypothesis and your confidence: exploring, low, medium or high.",
            "List the gaps: what would change your mind. Mark needs_people when only the people "
            "in this thread can answer a gap.",
        ),
        schema=ResearchFinding,
        temperature=0.4,
        max_tokens=1500,
    ),
    Mode.CRITIC: ModeSpec(
        mode=Mode.CRITIC,
        purpose="challenge the current hypothesis before anyone acts on it.",
        steps=(
            "Challenge the hypothesis: what does the evidence not support?",
            "Name the vulnerabilities in the reasoning (bias, missing data, confounders).",
            "Give at least two alternative hypotheses, each with why it could be true.",
            "List the risks of acting on the current hypothesis.",
            "Say how much confidence remains: exploring, low, medium or high.",
        ),
        schema=CriticFinding,
        temperature=0.6,
        max_tokens=1200,
    ),
    Mode.PLANNER: ModeSpec(
        mode=Mode.PLANNER,
        purpose="turn what is known into an action plan people can follow.",
        steps=(
            "Split the work into phases, each with concrete steps, success criteria and a duration.",
            "Give an overall timeline and the dependencies.",
            "List the risks, each with a mitigation.",
            "Name the metrics that will show whether the plan worked.",
        ),
        schema=PlanFinding,
        temperature=0.3,
        max_tokens=1800,
    ),
}

_SCHEMAS = {mode: strict_json_schema(spec.schema) for mode, spec in MODES.items()}

#: A plain question to a persona: prose, no schema.
CONVERSATION_TEMPERATURE = 0.7
CONVERSATION_MAX_TOKENS = 900
