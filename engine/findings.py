"""What each reasoning mode must produce: pydantic schemas plus the rules we really check.

The schemas are sent to the model as JSON Schema (every field required, no extras, so they work
with OpenAI's strict mode and Anthropic's tool input). The rules that JSON Schema cannot say
well (a source on every evidence item, at least two alternatives, a mitigation for every risk)
are pydantic validators, so `Model.model_validate_json(text)` either gives a finding we trust
or a list of errors we can send back to the model.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import total_ordering
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator


@total_ordering
class Confidence(StrEnum):
    """An ordered scale: compare with <, never as strings."""

    EXPLORING = "exploring"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _CONFIDENCE_ORDER.index(self)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Confidence):
            return NotImplemented
        return self.rank < other.rank

    # StrEnum inherits str's comparisons; make every ordering operator use the scale.
    def __le__(self, other: object) -> bool:
        if not isinstance(other, Confidence):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Confidence):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Confidence):
            return NotImplemented
        return self.rank >= other.rank

    __hash__ = str.__hash__


_CONFIDENCE_ORDER = [Confidence.EXPLORING, Confidence.LOW, Confidence.MEDIUM, Confidence.HIGH]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _non_empty(items: list[str], what: str) -> list[str]:
    cleaned = [i.strip() for i in items if i and i.strip()]
    if not cleaned:
        raise ValueError(f"{what} must name at least one item")
    return cleaned


# --- researcher -----------------------------------------------------------------------------


class Evidence(_Strict):
    claim: str
    source: str  # where it comes from: the person's message, channel memory, a log, a metric

    @field_validator("claim")
    @classmethod
    def _claim(cls, v: str) -> str:
        if not v:
            raise ValueError("every evidence item needs a claim")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if not v:
            raise ValueError("every evidence item needs a source (where does this come from?)")
        return v


class Hypothesis(_Strict):
    statement: str
    confidence: Confidence

    @field_validator("statement")
    @classmethod
    def _statement(cls, v: str) -> str:
        if not v:
            raise ValueError("the hypothesis needs a statement")
        return v


class Gap(_Strict):
    question: str
    needs_people: bool  # True: only the people in the thread can answer it


class ResearchFinding(_Strict):
    summary: str
    evidence: list[Evidence]
    patterns: list[str]
    hypothesis: Hypothesis
    gaps: list[Gap]

    @field_validator("evidence")
    @classmethod
    def _evidence(cls, v: list[Evidence]) -> list[Evidence]:
        if not v:
            raise ValueError("a research finding needs at least one evidence item with a source")
        return v


# --- critic ---------------------------------------------------------------------------------


class Alternative(_Strict):
    statement: str
    why: str


class CriticFinding(_Strict):
    summary: str
    challenges: list[str]
    vulnerabilities: list[str]
    alternatives: list[Alternative]
    risks: list[str]
    remaining_confidence: Confidence

    @field_validator("challenges")
    @classmethod
    def _challenges(cls, v: list[str]) -> list[str]:
        return _non_empty(v, "challenges")

    @field_validator("alternatives")
    @classmethod
    def _alternatives(cls, v: list[Alternative]) -> list[Alternative]:
        distinct = {a.statement.lower() for a in v if a.statement}
        if len(distinct) < 2:
            raise ValueError("the critic must name at least two different alternative hypotheses")
        return v


# --- planner --------------------------------------------------------------------------------


class PlanPhase(_Strict):
    name: str
    steps: list[str]
    success_criteria: list[str]
    duration: str

    @field_validator("success_criteria")
    @classmethod
    def _criteria(cls, v: list[str]) -> list[str]:
        return _non_empty(v, "every plan phase's success_criteria")


class PlanRisk(_Strict):
    risk: str
    mitigation: str

    @model_validator(mode="after")
    def _mitigated(self) -> "PlanRisk":
        if not self.mitigation:
            raise ValueError(f"the plan risk {self.risk!r} needs a mitigation")
        return self


class PlanFinding(_Strict):
    summary: str
    phases: list[PlanPhase]
    timeline: str
    dependencies: list[str]
    risks: list[PlanRisk]
    metrics: list[str]

    @field_validator("phases")
    @classmethod
    def _phases(cls, v: list[PlanPhase]) -> list[PlanPhase]:
        if not v:
            raise ValueError("a plan needs at least one phase")
        return v


Finding = ResearchFinding | CriticFinding | PlanFinding


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with every property required and no extras anywhere.

    OpenAI's strict structured output demands exactly this; Anthropic accepts it as a tool's
    input schema. Our models have no optional fields, so nothing is lost.
    """
    schema = model.model_json_schema()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            if isinstance(node.get("title"), str):
                del node["title"]  # noise for the model; property names say it
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


def validation_problems(error: ValidationError) -> list[str]:
    """Readable, model-friendly descriptions of what was wrong with a finding."""
    problems = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "the reply"
        msg = e["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {msg}")
    return problems


_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> str:
    """The JSON object inside a reply: strip ```json fences, take the outermost {...}.

    When there is no object, the text comes back as it was: the engine's repair loop will tell
    the model what was wrong, so nothing here raises.
    """
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        return stripped
    fenced = _FENCE_RE.search(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    start, end = stripped.find("{"), stripped.rfind("}")
    if start == -1:
        return stripped
    return stripped[start : end + 1] if end > start else stripped[start:]  # cut off: keep the start
