"""The investigation state machine: discovery → validation → planning → complete.

Pure functions over records, so the rules are easy to read and to test: what the router sees,
how a finding moves the phase, when to stop and ask the people in the thread, and which checks
are still open when it is time to plan.
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


def _persona_turns(turns: list[TurnRecord]) -> list[TurnRecord]:
    return [t for t in turns if t.role == TurnRole.PERSONA and t.mode in Mode.__members__.values()]


def since_people(turns: list[TurnRecord]) -> list[TurnRecord]:
    """The persona turns after the latest message from a person (all of them if nobody wrote)."""
    last_human = max((t.seq for t in turns if t.role == TurnRole.HUMAN), default=0)
    return [t for t in _persona_turns(turns) if t.seq > last_human]


def setbacks(turns: list[TurnRecord]) -> int:
    """Researcher and critic turns since people last wrote that brought no progress.

    No progress: the turn left confidence below medium, or its answer could not be used
    (unstructured). Two of them and researcher and critic are going round in circles.
    """
    count = 0
    for t in since_people(turns):
        if t.mode not in (Mode.RESEARCHER, Mode.CRITIC):
            continue
        c = _confidence(t)
        if not t.structured or c is None or c < Confidence.MEDIUM:
            count += 1
    return count


def router_state(
    rec: ThreadRecord, turns: list[TurnRecord], max_turns: int, forced: Mode | None = None, *, auto_left: int = 99
) -> RouterState:
    """Summarise the thread so far into the router's features."""
    persona_turns = _persona_turns(turns)
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
        setbacks=0 if new_evidence else setbacks(turns),
        auto_left=auto_left,
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


def _norm(question: str) -> str:
    return " ".join(question.casefold().split()).rstrip("?.! ")


def asked_before(turns: list[TurnRecord]) -> set[str]:
    """The questions already put to the people of this thread (normalised), from the turns' routes."""
    return {_norm(q) for t in turns for q in ((t.route or {}).get("asks") or [])}


def questions_for_people(
    mode: Mode, finding: dict | None, researcher_streak: int, asked: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """Gaps only people can answer, when the evidence has run dry: stop and ask them.

    Asked when a researcher turn still has low confidence and names gaps marked needs_people,
    or when every gap needs people and research has already gone round twice. A question
    already asked in this thread is not asked again (people answered it, or chose not to).
    """
    if mode != Mode.RESEARCHER or not finding:
        return []
    gaps = finding.get("gaps", [])
    people = [g["question"] for g in gaps if g.get("needs_people")]
    if not people:
        return []
    conf = Confidence(finding.get("hypothesis", {}).get("confidence", "exploring"))
    if conf <= Confidence.LOW or (len(people) == len(gaps) and researcher_streak >= 2):
        return [q for q in people if _norm(q) not in asked]
    return []


def stuck_questions(turns: list[TurnRecord], asked: set[str] | frozenset[str]) -> list[str]:
    """When stuck: the latest hypothesis's gaps that only people can answer and nobody asked yet."""
    research = next((t for t in reversed(_persona_turns(turns)) if t.mode == Mode.RESEARCHER and t.structured), None)
    if research is None:
        return []
    gaps = (research.findings or {}).get("gaps", [])
    return [g["question"] for g in gaps if g.get("needs_people") and _norm(g["question"]) not in asked]


def open_checks(turns: list[TurnRecord], limit: int = 6) -> list[str]:
    """What still has to be checked: the latest critique's challenges and the latest hypothesis's gaps.

    The plan's first phase must cover them: a plan that ignores the critic's open checks would
    act on a hypothesis nobody has confirmed (a later research turn without new evidence does not
    answer a challenge).
    """
    structured = [t for t in _persona_turns(turns) if t.structured]
    critic = next((t for t in reversed(structured) if t.mode == Mode.CRITIC), None)
    research = next((t for t in reversed(structured) if t.mode == Mode.RESEARCHER), None)
    checks = [str(c) for c in ((critic.findings or {}).get("challenges", []) if critic else [])]
    for g in (research.findings or {}).get("gaps", []) if research else []:
        checks.append(str(g.get("question", "")) + (" (only people here can answer)" if g.get("needs_people") else ""))
    unique: dict[str, str] = {}
    for c in checks:
        if c.strip():
            unique.setdefault(_norm(c), c.strip())
    return list(unique.values())[:limit]


def confidence_of(mode: Mode, finding: dict | None) -> str | None:
    if not finding:
        return None
    if mode == Mode.RESEARCHER:
        return finding.get("hypothesis", {}).get("confidence")
    if mode == Mode.CRITIC:
        return finding.get("remaining_confidence")
    return Confidence.HIGH.value  # a validated plan
