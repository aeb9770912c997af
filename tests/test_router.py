import json

import pytest
from pydantic import ValidationError

from engine.findings import Confidence, CriticFinding, PlanFinding, ResearchFinding, validation_problems
from engine.investigation import next_phase, questions_for_people
from engine.memory.records import Phase
from engine.modes import MODES, Mode
from engine.router import Router, RouterState, classify
from tests.fakes import critique, plan, research


def test_confidence_is_an_ordered_scale_not_strings():
    assert Confidence.EXPLORING < Confidence.LOW < Confidence.MEDIUM < Confidence.HIGH
    assert "high" < "low" and Confidence.HIGH > Confidence.LOW  # strings would say otherwise
    assert max(Confidence.LOW, Confidence.MEDIUM) is Confidence.MEDIUM
    assert sorted([Confidence.HIGH, Confidence.EXPLORING]) == [Confidence.EXPLORING, Confidence.HIGH]


def test_valid_findings_pass():
    ResearchFinding.model_validate(research())
    CriticFinding.model_validate(critique())
    PlanFinding.model_validate(plan())


@pytest.mark.parametrize(
    "model, data, fragment",
    [
        (ResearchFinding, {**research(), "evidence": [{"claim": "x", "source": "  "}]}, "source"),
        (ResearchFinding, {**research(), "evidence": []}, "at least one evidence"),
        (CriticFinding, {**critique(), "alternatives": critique()["alternatives"][:1]}, "two different alternative"),
        (CriticFinding, {**critique(), "alternatives": [critique()["alternatives"][0]] * 2}, "two different alternative"),
        (CriticFinding, {**critique(), "challenges": [""]}, "challenges"),
        (PlanFinding, {**plan(), "phases": [{**plan()["phases"][0], "success_criteria": []}]}, "success_criteria"),
        (PlanFinding, {**plan(), "risks": [{"risk": "outage", "mitigation": ""}]}, "mitigation"),
        (ResearchFinding, {**research(), "hypothesis": {"statement": "x", "confidence": "certain"}}, "confidence"),
        (ResearchFinding, {**research(), "extra": 1}, "extra"),
    ],
)
def test_validation_rules_are_really_checked(model, data, fragment):
    with pytest.raises(ValidationError) as err:
        model.model_validate(data)
    assert fragment in " ".join(validation_problems(err.value)).lower().replace("_", "_")


def test_schemas_are_strict_for_structured_output():
    for spec in MODES.values():
        schema = spec.json_schema
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) == set(schema["properties"])
        for sub in schema.get("$defs", {}).values():
            if sub.get("type") == "object":
                assert sub["additionalProperties"] is False and set(sub["required"]) == set(sub["properties"])
        json.dumps(schema)
    assert MODES[Mode.CRITIC].temperature > MODES[Mode.PLANNER].temperature


def test_router_follows_the_phases():
    r = Router()
    assert r.decide(RouterState(phase=Phase.DISCOVERY)).mode == Mode.RESEARCHER
    assert r.decide(RouterState(phase=Phase.VALIDATION, confidence=Confidence.MEDIUM, previous_mode=Mode.RESEARCHER, repeats=1, turn_count=1)).mode == Mode.CRITIC
    assert r.decide(RouterState(phase=Phase.PLANNING, confidence=Confidence.MEDIUM, previous_mode=Mode.CRITIC, repeats=1, critiqued=True, turn_count=2)).mode == Mode.PLANNER


def test_router_keeps_scores_and_reasons():
    d = Router().decide(RouterState(phase=Phase.DISCOVERY, inv_type="security"))
    assert set(d.scores) == {"researcher", "critic", "planner"}
    assert any("phase is discovery" in r for r in d.reasons)
    assert any("security" in r for r in d.reasons)
    assert d.as_dict()["mode"] == d.mode.value


def test_router_escalates_against_loops():
    r = Router()
    stuck = [r.decide(RouterState(phase=Phase.DISCOVERY, confidence=Confidence.LOW, previous_mode=Mode.RESEARCHER, repeats=n, turn_count=n)).mode for n in range(5)]
    assert stuck[0] == Mode.RESEARCHER
    assert stuck[-1] != Mode.RESEARCHER  # repeating the same mode costs more each time


def test_router_plans_when_turns_run_out():
    d = Router().decide(RouterState(phase=Phase.DISCOVERY, confidence=Confidence.LOW, turn_count=9, max_turns=10, previous_mode=Mode.RESEARCHER, repeats=1))
    assert d.mode == Mode.PLANNER and any("turn(s) left" in r for r in d.reasons)


def test_router_obeys_a_person():
    d = Router().decide(RouterState(phase=Phase.DISCOVERY, forced=Mode.PLANNER))
    assert d.mode == Mode.PLANNER


def test_classify_investigation_types():
    assert classify("intermittent 401s on checkout after token refresh") == "security"
    assert classify("the app crashes with an exception on start") == "debugging"
    assert classify("p99 latency is slow") == "performance"
    assert classify("should we migrate the monolith to microservices") == "architecture"
    assert classify("why did signups drop") == "business"
    assert classify("hello") == "general"


def test_phase_transitions():
    assert next_phase(Mode.RESEARCHER, research("low")) == Phase.DISCOVERY
    assert next_phase(Mode.RESEARCHER, research("medium")) == Phase.VALIDATION
    assert next_phase(Mode.CRITIC, critique("low")) == Phase.DISCOVERY
    assert next_phase(Mode.CRITIC, critique("high")) == Phase.PLANNING
    assert next_phase(Mode.PLANNER, plan()) == Phase.COMPLETE


def test_stop_and_ask_people_only_when_evidence_runs_dry():
    people = research("low", gaps=[("Which customers?", True), ("Which region?", False)])
    assert questions_for_people(Mode.RESEARCHER, people, 1) == ["Which customers?"]
    assert questions_for_people(Mode.RESEARCHER, research("medium", gaps=[("Who?", True), ("x", False)]), 1) == []
    assert questions_for_people(Mode.RESEARCHER, research("medium", gaps=[("Who?", True)]), 2) == ["Who?"]
    assert questions_for_people(Mode.CRITIC, critique(), 3) == []


def test_router_escalates_stuck_rounds_to_a_plan_and_says_why():
    r = Router()
    stuck = RouterState(phase=Phase.DISCOVERY, confidence=Confidence.LOW, previous_mode=Mode.CRITIC, repeats=1,
                        turn_count=2, critiqued=True, setbacks=2)
    d = r.decide(stuck)
    assert d.mode == Mode.PLANNER
    assert any(reason.startswith("planner +6: stuck: 2 turns") and "checks still open" in reason for reason in d.reasons)
    # one setback is not stuck yet, unless the automatic turns are about to run out
    assert r.decide(RouterState(phase=Phase.DISCOVERY, confidence=Confidence.LOW, previous_mode=Mode.CRITIC, repeats=1,
                                turn_count=2, critiqued=True, setbacks=1)).mode == Mode.RESEARCHER
    last = r.decide(RouterState(phase=Phase.VALIDATION, confidence=Confidence.MEDIUM, previous_mode=Mode.RESEARCHER,
                                repeats=1, turn_count=3, setbacks=1, auto_left=1))
    assert last.mode == Mode.PLANNER and any("1 automatic turn(s) are left" in x for x in last.reasons)
    # new evidence from people, or a person's request, starts afresh
    assert not RouterState(phase=Phase.DISCOVERY, setbacks=3, new_evidence=True).stuck
    assert r.decide(RouterState(phase=Phase.DISCOVERY, setbacks=3, forced=Mode.CRITIC)).mode == Mode.CRITIC


def test_router_does_not_look_twice_at_the_same_weak_evidence_or_challenge_twice():
    r = Router()
    weak = r.decide(RouterState(phase=Phase.DISCOVERY, confidence=Confidence.LOW, previous_mode=Mode.RESEARCHER,
                                repeats=1, turn_count=1, setbacks=1, inv_type="debugging"))
    assert weak.mode == Mode.CRITIC and any("name what is missing" in x for x in weak.reasons)
    again = r.decide(RouterState(phase=Phase.PLANNING, confidence=Confidence.MEDIUM, previous_mode=Mode.PLANNER,
                                 repeats=1, turn_count=3, critiqued=True))
    assert again.mode == Mode.PLANNER  # a failed plan is retried, not sent back to the critic
    assert any("already challenged" in x for x in again.reasons)
