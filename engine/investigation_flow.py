"""An investigation: turns, one persona and mode each, until it completes, needs people, or
hits a limit. The state machine itself is pure (`engine.investigation`); this module asks the
router, the cast and the model, stores each turn, posts it and moves the thread's state.
"""

from __future__ import annotations

from engine.casting import Casting
from engine.context import clip_for_model, history_text, memory_text
from engine.crashpoints import crash_point
from engine.findings import Confidence
from engine.flows import FlowPart, Flows, Job, recalled_summary
from engine.investigation import (
    asked_before,
    confidence_of,
    next_phase,
    open_checks,
    questions_for_people,
    router_state,
    stuck_questions,
)
from engine.memory.records import (
    Phase,
    ThreadKind,
    ThreadRecord,
    ThreadStatus,
    TurnRecord,
    TurnRole,
)
from engine.models import Action, ReplyKind, TaskKind
from engine.modes import Mode
from engine.personas import Persona
from engine.router import MODE_PHASE, Router, classify
from engine.turns import TurnOutcome, structured_turn


class InvestigationFlow(FlowPart):
    def __init__(self, flows: Flows):
        super().__init__(flows)
        self.casting = Casting(flows.personas, flows.config.cast)
        self.router = Router()

    async def open(self, job: Job, named: Persona | None) -> ThreadRecord:
        """Create the investigation (or find it, when resumed), post its root, then run it."""
        t, flows = job.task, self.flows
        thread_id = await flows.thread_id(job, ThreadKind.INVESTIGATION)
        rec = await self.memory.get_thread(thread_id) if job.resumed else None
        if rec is None:
            route = self.personas.route_by_domain(job.text)
            lead = named or self.personas[route.persona]
            rec = await self.memory.create_thread(
                ThreadRecord(
                    id=thread_id, kind=ThreadKind.INVESTIGATION, platform=t.platform, workspace=t.workspace,
                    channel=t.channel, thread=None, title=job.text[:200], inv_type=classify(job.text), lead=lead.name,
                )
            )
        job.thread = rec
        lead = self.personas.get(rec.lead) or self.personas[self.personas.default]
        job.persona = lead
        if rec.thread is None:
            cast = ", ".join(f"{mode} {p.display_name}" for mode, p in self.casting.opening_cast(named).items())
            text = (
                f"🔎 Investigation {rec.id}: {rec.title}\n"
                f"Lead: {lead.display_name} · Cast: {cast} · Type: {rec.inv_type}\n"
                f"Reply in this thread to add evidence; the personas take it from there."
            )
            posted = await flows.post(job, flows.reply(job, ReplyKind.ROOT, lead, text, key=f"root:{rec.id}", thread=None,
                                                       investigation_id=rec.id, title=rec.title))
            rec.thread = posted.thread or posted.message_id
            rec = await self.memory.update_thread(rec)
            job.thread = rec
        await flows.human_turn(job, rec, t.text.strip())
        return await self.run(job, rec, named)

    async def run(self, job: Job, rec: ThreadRecord, speaker: Persona | None, forced: Mode | None = None) -> ThreadRecord:
        """Run turns until the investigation completes, needs people, or hits a limit."""
        cfg = self.config
        job.thread = rec
        step = 1
        turns = await self.memory.turns(rec.id)
        while True:
            job.step = step
            turn = await job.earlier_turn(self.memory, step)
            if turn is None:
                if rec.status not in (ThreadStatus.ACTIVE,):
                    break
                # The notice goes out before the state is stored: a crash between the two resumes
                # the task, which finds the notice posted (by its key) and stores the state.
                if rec.turn_count >= cfg.max_turns:
                    await self.flows.notice(job, self.casting.cast(Mode.PLANNER), (
                        f"This investigation reached its limit of {cfg.max_turns} turns, so I am closing it here. "
                        "The latest findings above are where we stand; start a new one with /investigate to go further."
                    ), "limit")
                    crash_point("notice_posted")
                    rec.status = ThreadStatus.CLOSED
                    rec = await self.memory.update_thread(rec)
                    break
                if step > cfg.max_auto_turns:
                    await self.flows.notice(job, self.personas.get(rec.lead) or self.casting.cast(Mode.PLANNER), (
                        f"That's {cfg.max_auto_turns} turns in a row without hearing from you, so I'm pausing here. "
                        "Reply in this thread with more evidence (or just “continue”); the actions under the last turn "
                        "challenge it, move it to planning or close it."
                    ), "paused")
                    crash_point("notice_posted")
                    rec.status = ThreadStatus.PAUSED
                    rec = await self.memory.update_thread(rec)
                    break
                turn = await self._new_turn(job, rec, turns, speaker if step == 1 else None, forced if step == 1 else None)
                turns = [*turns, turn]
            if not superseded(turn, turns):
                rec = await self._apply(job, rec, turn, turns)
            # else: a resumed task replaying a turn that a later turn followed. That later turn
            # was only made once this one was posted and its state stored, so there is nothing
            # to redo, and applying it again would move the thread back to its state back then.
            if rec.status != ThreadStatus.ACTIVE:
                break
            step += 1
        return rec

    async def _new_turn(self, job: Job, rec: ThreadRecord, turns: list[TurnRecord], speaker: Persona | None, forced: Mode | None) -> TurnRecord:
        auto_left = self.config.max_auto_turns - job.step + 1
        decision = self.router.decide(router_state(rec, turns, self.config.max_turns, forced, auto_left=auto_left))
        mode = decision.mode
        persona, persona_reason = self.casting.speaker(mode, turns, speaker)
        job.persona = persona
        await self.flows.working(job, persona, rec.thread)
        if job.recalled is None:  # the same question all through this task: look it up once
            latest = next((t.text for t in reversed(turns) if t.role == TurnRole.HUMAN), rec.title)
            job.recalled = await self.flows.recall(job, rec, f"{rec.title} {latest[:500]}")
        recalled = job.recalled
        checks = open_checks(turns) if mode == Mode.PLANNER else []
        open_part = ("Checks still open (the critic's challenges and the research gaps). The first phase of "
                     "your plan must cover each of them:\n" + "\n".join(f"- {c}" for c in checks) + "\n\n") if checks else ""
        context = (
            f"Investigation {rec.id} ({rec.inv_type}): {rec.title}\n"
            f"Phase: {MODE_PHASE[mode].value}. This is turn {rec.turn_count + 1} of at most {self.config.max_turns}.\n\n"
            f"Thread so far:\n{history_text(turns, self.config.context_tokens)}\n\n"
            f"{open_part}Now do your {mode.value} turn on this investigation."
        )
        outcome: TurnOutcome = await structured_turn(
            self.provider, persona, mode, task=clip_for_model(rec.title)[0],
            memory=memory_text(recalled, self.config.context_tokens // 4), context=context,
        )
        route = {
            **decision.as_dict(), "persona": persona.name, "persona_reason": persona_reason,
            "recalled": [recalled_summary(r) for r in recalled],
        }
        if checks:
            route["open_checks"] = checks
            route["reasons"].append(f"planner: the plan must start with the {len(checks)} check(s) still open")
        if not outcome.structured:
            route["problems"] = outcome.problems
        previous = next((t.confidence for t in reversed(turns) if t.confidence), None)
        record = self.flows.turn_record(
            job, rec, persona, outcome, route=route,
            confidence=confidence_of(mode, outcome.finding) if mode != Mode.PLANNER or not outcome.finding else (previous or Confidence.HIGH.value),
        )
        record.route["asks"] = self._asks(rec, turns, record, auto_left)
        return await self.memory.add_turn(record)

    def _asks(self, rec: ThreadRecord, turns: list[TurnRecord], record: TurnRecord, auto_left: int) -> list[str]:
        """The questions to put to people after this turn (none asked twice in a thread).

        A low-confidence finding whose gaps only people can answer; or, when this turn leaves the
        investigation stuck (researcher and critic going round), the open gaps that need people:
        a precise question rather than another round. Stored with the turn, so a resumed task
        asks exactly the same.
        """
        history = [*turns, record.model_copy(update={"seq": (turns[-1].seq if turns else 0) + 1})]
        mode = Mode(record.mode)
        streak = 0
        for t in reversed([t for t in history if t.role == TurnRole.PERSONA]):
            if t.mode != Mode.RESEARCHER:
                break
            streak += 1
        asked = asked_before(turns)
        asks = questions_for_people(mode, record.findings if record.structured else None, streak, asked)
        if asks:
            return asks
        after = router_state(rec, history, self.config.max_turns, auto_left=auto_left - 1)
        if after.stuck:
            asks = stuck_questions(history, asked)
            if asks:
                record.route["escalation"] = "ask"
                record.route["reasons"].append(
                    f"stuck: {after.setbacks} turn(s) without progress since people last wrote; "
                    "asking the people in the thread what only they can answer instead of another round"
                )
        return asks

    async def _apply(self, job: Job, rec: ThreadRecord, turn: TurnRecord, turns: list[TurnRecord]) -> ThreadRecord:
        """Move the state machine for a turn, post it, then store the new state. Idempotent for
        the thread's latest turn: safe to repeat on resume (`run` never repeats it for an older
        one, whose state a later turn has moved on from)."""
        flows = self.flows
        mode = Mode(turn.mode)
        persona = self.personas.get(turn.author) or self.casting.cast(mode)
        rec.turn_count = sum(1 for t in turns if t.role == TurnRole.PERSONA)
        if turn.structured:
            rec.phase = next_phase(mode, turn.findings)
        route = turn.route or {}
        if "asks" in route:  # decided when the turn was made (see _asks)
            questions = list(route["asks"] or [])
        else:  # a turn stored by an older version
            streak = 0
            for t in reversed([t for t in turns if t.role == TurnRole.PERSONA]):
                if t.mode != Mode.RESEARCHER:
                    break
                streak += 1
            questions = questions_for_people(mode, turn.findings if turn.structured else None, streak)
        if rec.phase == Phase.COMPLETE:
            rec.status = ThreadStatus.COMPLETE
        elif questions:
            rec.status = ThreadStatus.WAITING
        job.thread = rec
        actions = [] if rec.status == ThreadStatus.COMPLETE else [
            Action(kind=TaskKind.CHALLENGE, label="Challenge", investigation_id=rec.id),
            Action(kind=TaskKind.PLAN, label="Move to planning", investigation_id=rec.id),
            Action(kind=TaskKind.CLOSE, label="Close", investigation_id=rec.id),
        ]
        if mode == Mode.PLANNER and turn.structured:  # hand the plan to a crew (engine.crews.flow)
            actions.append(Action(kind=TaskKind.CREW, label="Hand to a crew", investigation_id=rec.id))
        heading = f"{persona.display_name} · {mode.value}" + (f" · confidence {turn.confidence}" if turn.confidence else "")
        text = f"{heading}\n{turn.text}"
        if not turn.structured:
            problems = "; ".join((turn.route or {}).get("problems", [])[:3]) or "it did not match the schema"
            text = (f"{heading}\n⚠️ Unstructured answer: the model's reply did not pass validation after one retry "
                    f"({problems}). Shown as written, not used to move the investigation on:\n{turn.text}")
        await flows.post(job, flows.reply(
            job, ReplyKind.TURN, persona, text, key=f"turn:{rec.id}:{turn.seq}", thread=rec.thread, mode=mode.value,
            content=turn.findings, structured=turn.structured, investigation_id=rec.id, title=heading, actions=actions,
        ))
        if questions:
            asks = "\n".join(f"• {q}" for q in questions)
            opening = ("We've gone round without getting past "
                       f"{turn.confidence or 'low'} confidence, and another round won't change that. "
                       if route.get("escalation") == "ask" else "")
            await flows.post(job, flows.reply(job, ReplyKind.QUESTION, persona, (
                f"{opening}I need your help before going further. Only people here can answer:\n{asks}\n"
                "Reply in this thread and I'll pick it up from there."
            ), key=f"ask:{rec.id}:{turn.seq}", thread=rec.thread, investigation_id=rec.id))
        elif rec.status == ThreadStatus.COMPLETE:
            lead = self.personas.get(rec.lead) or persona
            await flows.post(job, flows.reply(job, ReplyKind.NOTICE, lead, (
                f"✅ Investigation {rec.id} is complete after {rec.turn_count} turns. Reply here with new evidence "
                "to reopen it."
            ), key=f"done:{rec.id}:{turn.seq}", thread=rec.thread, investigation_id=rec.id))
        crash_point("turn_posted")
        # Stored after the posts: a crash before this resumes the task, which replays this turn
        # (posts already made are skipped by key) instead of finding a state nobody was told of.
        rec = await self.memory.update_thread(rec)
        job.thread = rec
        return rec


def superseded(turn: TurnRecord, turns: list[TurnRecord]) -> bool:
    """Whether a persona turn came after `turn` in the thread."""
    return any(t.role == TurnRole.PERSONA and t.seq > turn.seq for t in turns)
