"""The investigation state machine: discovery → validation → planning → complete.

Pure functions over records, so the rules are easy to read and to test: what the router sees,
how a finding moves the phase, and when to stop and ask the people in the thread.
"""

from __future__ import annotations

from engine.findings import Confidence
from engine.memory.records import Phase, ThreadRecord, TurnRecord, TurnRole
from engine.modes import Mode
from engine.router import RouterState


def _confidence(turn: TurnRecord) -> Confidence | None:
    try:
        return Confidence(turn.confidence) if turn.confidence else None
    except ValueError:
        return None


def router_state(rec: ThreadRecord, turns: list[TurnRecord], max_turns: int, forced: Mode | None = None) -> RouterState:
    """Summarise the thread so far into the router's features."""
    persona_turns = [t for t in turns if t.role == TurnRole.PERSONA and t.mode in Mode.__members__.values()]
    confidence = Confidence.EXPLORING
    open_questions = risks = 0
    critiqued = False
    for t in persona_turns:
        c = _confidence(t)
        if c is not None and t.structured:
            confidence = c
        f = t.findings or {}
        if t.mode == Mode.RESEARCHER and t.structured:
            open_questions = len(f.get("gaps", []))
            critiqued = False
        elif t.mode == Mode.CRITIC and t.structured:
            risks = len(f.get("risks", []))
            critiqued = True
    previous = Mode(persona_turns[-1].mode) if persona_turns else None
    repeats = 0
    for t in reversed(persona_turns):
        if t.mode != previous:
            break
        repeats += 1
    last_persona_seq = persona_turns[-1].seq if persona_turns else 0
    new_evidence = any(t.role == TurnRole.HUMAN and t.seq > last_persona_seq for t in turns) and bool(persona_turns)
    return RouterState(
        phase=rec.phase,
        confidence=confidence,
        open_questions=open_questions,
        risks=risks,
        previous_mode=previous,
        repeats=repeats,
        turn_count=rec.turn_count,
        max_turns=max_turns,
        inv_type=rec.inv_type,
        new_evidence=new_evidence,
        critiqued=critiqued,
        forced=forced,
    )


def next_phase(mode: Mode, finding: dict | None) -> Phase:
    """Where a turn's finding moves the investigation. Unstructured turns leave it where it was."""
    if mode == Mode.RESEARCHER:
        conf = Confidence((finding or {}).get("hypothesis", {}).get("confidence", "exploring"))
        return Phase.VALIDATION if conf >= Confidence.MEDIUM else Phase.DISCOVERY
    if mode == Mode.CRITIC:
        conf = Confidence((finding or {}).get("remaining_confidence", "exploring"))
        return Phase.PLANNING if conf >= Confidence.MEDIUM else Phase.DISCOVERY
    return Phase.COMPLETE


def questions_for_people(mode: Mode, finding: dict | None, researcher_streak: int) -> list[str]:
    """Gaps only people can answer, when the evidence has run dry: stop and ask them.

    Asked when a researcher turn still has low confidence and names gaps marked needs_people,
    or when every gap needs people and research has already gone round twice.
    """
    if mode != Mode.RESEARCHER or not finding:
        return []
    gaps = finding.get("gaps", [])
    people = [g["question"] for g in gaps if g.get("needs_people")]
    if not people:
        return []
    conf = Confidence(finding.get("hypothesis", {}).get("confidence", "exploring"))
    if conf <= Confidence.LOW or (len(people) == len(gaps) and researcher_streak >= 2):
        return people
    return []


def confidence_of(mode: Mode, finding: dict | None) -> str | None:
    if not finding:
        return None
    if mode == Mode.RESEARCHER:
        return finding.get("hypothesis", {}).get("confidence")
    if mode == Mode.CRITIC:
        return finding.get("remaining_confidence")
    return Confidence.HIGH.value  # a validated plan
