"""The scoring router: which mode comes next in an investigation, and why.

Every feature adds points to one or more modes and writes down a reason; the highest score wins
(ties go to the earlier mode in researcher → critic → planner order, so it is deterministic).
The scores and reasons are stored with the turn, so "why did Karen speak?" always has an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.findings import Confidence
from engine.memory.records import Phase
from engine.modes import Mode

PHASE_MODE = {Phase.DISCOVERY: Mode.RESEARCHER, Phase.VALIDATION: Mode.CRITIC, Phase.PLANNING: Mode.PLANNER}
MODE_PHASE = {mode: phase for phase, mode in PHASE_MODE.items()}
#: Turns without progress (since people last wrote) after which an investigation is stuck.
STUCK_AFTER = 2

# Investigation types, recognised by words in the question. Order breaks ties.
_TYPE_WORDS: dict[str, tuple[str, ...]] = {
    "security": ("security", "auth", "401", "403", "vulnerab", "leak", "breach", "cve", "permission", "token", "phish"),
    "debugging": ("error", "bug", "crash", "fail", "broken", "intermittent", "exception", "500", "timeout", "flaky", "regression"),
    "performance": ("slow", "latency", "performance", "p99", "p95", "memory", "cpu", "throughput", "load"),
    "architecture": ("architecture", "design", "scale", "scaling", "migrat", "refactor", "monolith", "microservice", "schema"),
    "business": ("signup", "conversion", "churn", "revenue", "sales", "marketing", "pricing", "customer", "retention", "funnel"),
}

# How each type leans: (mode, bonus, reason)
_TYPE_BIAS: dict[str, list[tuple[Mode, float, str]]] = {
    "security": [(Mode.CRITIC, 1.0, "security questions deserve an adversarial look")],
    "debugging": [(Mode.RESEARCHER, 0.5, "debugging is driven by evidence")],
    "performance": [(Mode.RESEARCHER, 0.5, "performance needs measurements first")],
    "architecture": [
        (Mode.CRITIC, 0.5, "architecture choices need their trade-offs challenged"),
        (Mode.PLANNER, 0.5, "architecture ends in a migration plan"),
    ],
    "business": [(Mode.CRITIC, 0.5, "business hypotheses are easy to fool yourself with")],
}


def classify(question: str) -> str:
    """debugging, security, performance, architecture, business or general, by keyword count."""
    text = question.lower()
    best, best_hits = "general", 0
    for kind, words in _TYPE_WORDS.items():
        hits = sum(1 for w in words if re.search(rf"\b{re.escape(w)}", text))
        if hits > best_hits:
            best, best_hits = kind, hits
    return best


@dataclass(frozen=True)
class RouterState:
    """What the router looks at. Built from the investigation's record and its turns."""

    phase: Phase
    confidence: Confidence = Confidence.EXPLORING
    open_questions: int = 0
    risks: int = 0
    previous_mode: Mode | None = None
    repeats: int = 0  # how many turns in a row the previous mode has run
    turn_count: int = 0
    max_turns: int = 10
    inv_type: str = "general"
    new_evidence: bool = False  # a person added something since the last persona turn
    critiqued: bool = False  # a critic turn happened since the last researcher turn
    forced: Mode | None = None  # a person asked for it (challenge / plan)
    setbacks: int = 0  # researcher/critic turns since people last wrote that left confidence below medium
    auto_left: int = 99  # turns left before the automatic-turn pause

    @property
    def stuck(self) -> bool:
        """Researcher and critic are going round: escalate rather than run another round.

        After STUCK_AFTER turns without progress, or after one when the automatic turns are about
        to run out (better a plan now than a pause in the middle of the loop). New evidence from
        people, or a person's request, starts afresh.
        """
        if self.new_evidence or self.forced is not None:
            return False
        return self.setbacks >= STUCK_AFTER or (self.setbacks >= 1 and self.auto_left <= 1)


@dataclass(frozen=True)
class RouteDecision:
    mode: Mode
    scores: dict[str, float]
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "scores": self.scores, "reasons": self.reasons}


class Router:
    """Stateless: `decide(state)` is a pure function of the state."""

    order = (Mode.RESEARCHER, Mode.CRITIC, Mode.PLANNER)

    def decide(self, s: RouterState) -> RouteDecision:
        scores = {m: 0.0 for m in self.order}
        reasons: list[str] = []

        def add(mode: Mode, points: float, why: str) -> None:
            scores[mode] += points
            reasons.append(f"{mode.value} {points:+g}: {why}")

        if s.forced is not None:
            add(s.forced, 10, "a person asked for it")

        if s.phase in PHASE_MODE:
            add(PHASE_MODE[s.phase], 3, f"phase is {s.phase.value}")

        if s.confidence <= Confidence.LOW:
            add(Mode.RESEARCHER, 1.5, f"confidence is only {s.confidence.value}")
        elif s.confidence == Confidence.MEDIUM:
            add(Mode.CRITIC, 1.0, "medium confidence: test it before acting")
        else:
            add(Mode.PLANNER, 1.5, "high confidence: time to plan")
            if not s.critiqued:
                add(Mode.CRITIC, 0.75, "nobody has challenged this hypothesis yet")

        if s.open_questions > 2:
            add(Mode.RESEARCHER, 1.0, f"{s.open_questions} open questions")
        elif s.open_questions == 0 and s.turn_count > 0:
            add(Mode.PLANNER, 0.5, "no open questions left")

        if s.risks and s.critiqued:
            add(Mode.PLANNER, 0.5, f"{s.risks} risks identified: they need mitigations")

        if s.new_evidence:
            add(Mode.RESEARCHER, 1.0, "new evidence from the thread")

        for mode, bonus, why in _TYPE_BIAS.get(s.inv_type, []):
            add(mode, bonus, f"{s.inv_type}: {why}")

        # Against ping-pong: another look at the same evidence, or a second challenge of the same
        # hypothesis, changes nothing. Stuck researcher/critic rounds escalate to a plan whose
        # first phase is the checks still open (the questions only people can answer were asked
        # after the turn that got stuck: see engine.investigation.stuck_questions).
        fresh = s.new_evidence or s.forced is not None
        if not fresh and s.previous_mode == Mode.RESEARCHER and s.confidence < Confidence.MEDIUM and s.setbacks:
            add(Mode.RESEARCHER, -1.0, f"her last look left confidence at {s.confidence.value} and nothing new came in")
            add(Mode.CRITIC, 2.5, "a weak hypothesis needs someone to name what is missing")
        if not fresh and s.critiqued:
            add(Mode.CRITIC, -2.5, "the critic already challenged this hypothesis and nothing changed since")
        if s.stuck:
            why = (f"{s.setbacks} turns since people last wrote left confidence at {s.confidence.value}"
                   if s.setbacks >= STUCK_AFTER else
                   f"confidence is still {s.confidence.value} and only {s.auto_left} automatic turn(s) are left")
            add(Mode.PLANNER, 6.0, f"stuck: {why}; researcher and critic would only go round again, "
                "so escalate to a plan that starts with the checks still open")

        if s.previous_mode is not None and s.repeats >= 1 and s.forced != s.previous_mode:
            penalty = 2.0 * s.repeats
            add(s.previous_mode, -penalty, f"{s.previous_mode.value} ran {s.repeats} time(s) in a row")

        remaining = s.max_turns - s.turn_count
        if remaining <= 2:
            add(Mode.PLANNER, 2.5, f"only {remaining} turn(s) left: plan with what we know")

        best = max(self.order, key=lambda m: (scores[m], -self.order.index(m)))
        return RouteDecision(
            mode=best,
            scores={m.value: round(v, 2) for m, v in scores.items()},
            reasons=reasons,
        )
