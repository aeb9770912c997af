"""The two kinds of thread: a conversation (one answer per message) and an investigation (turns).

Every step is written to memory as it happens, and every step checks memory first, so a task
that is resumed after a crash continues where it stopped: turns already produced are not asked
of the model again, replies already posted are not posted again (see `engine.posting`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.context import clip_for_model, estimate_tokens, history_text, memory_text
from engine.findings import Confidence
from engine.investigation import confidence_of, next_phase, questions_for_people, router_state
from engine.crashpoints import crash_point
from engine.memory.records import Phase, Placeholder, Recollection, ThreadKind, ThreadRecord, ThreadStatus, TurnRecord, TurnRole
from engine.models import Action, Reply, ReplyKind, Task, TaskKind
from engine.modes import Mode
from engine.personas import Persona, PersonaRegistry
from engine.ports import ChatMessage, Provider
from engine.posting import Poster
from engine.router import MODE_PHASE, Router, classify
from engine.turns import TurnOutcome, conversation_turn, structured_turn

OFFLINE_MARK = (
    "🧪 Offline rehearsal (no model configured: set ANTHROPIC_API_KEY or OPENAI_API_KEY, "
    "or OPENAI_BASE_URL for a local server)"
)


@dataclass(frozen=True)
class EngineConfig:
    max_turns: int = 10
    max_auto_turns: int = 4  # persona turns in a row without a person's message
    cast: dict[str, str] = field(
        default_factory=lambda: {"researcher": "sophia", "critic": "karen", "planner": "cherry"}
    )
    context_tokens: int = 6000
    recall_limit: int = 5


@dataclass
class Job:
    """One task being worked on, and what a failure report needs to know about it."""

    task_id: int
    task: Task
    text: str  # the person's text, persona name removed, clipped for the model
    clipped: bool = False
    persona: Persona | None = None  # who is speaking now
    thread: ThreadRecord | None = None
    step: int = 0
    resumed: bool = False  # picked up again after a restart: look for work already done
    recalled: list[Recollection] | None = None  # channel memory found for this task, reused per turn

    async def earlier_turn(self, memory, step: int):
        """The turn this task already produced at `step`, if it is being resumed."""
        return await memory.turn_for_task(self.task_id, step) if self.resumed else None


class Flows:
    def __init__(self, memory, provider: Provider, personas: PersonaRegistry, poster: Poster, config: EngineConfig):
        self.memory = memory
        self.provider = provider
        self.personas = personas
        self.poster = poster
        self.config = config
        self.router = Router()

    # --- helpers ------------------------------------------------------------------------------

    def cast(self, mode: Mode) -> Persona:
        return self.personas.get(self.config.cast.get(mode.value)) or self.personas[self.personas.default]

    def reply(self, job: Job, kind: ReplyKind, persona: Persona, text: str, *, key: str, thread: str | None, **extra) -> Reply:
        offline = self.provider.name == "offline"
        if offline and kind == ReplyKind.ROOT:
            text = f"{OFFLINE_MARK}\n{text}"  # how to leave the rehearsal: once per thread is enough
        elif offline and kind in (ReplyKind.TURN, ReplyKind.ANSWER, ReplyKind.QUESTION):
            text = f"🧪 Offline rehearsal\n{text}"
        t = job.task
        return Reply(
            kind=kind, voice=persona.voice, platform=t.platform, workspace=t.workspace, channel=t.channel,
            thread=thread, text=text, key=key, offline=offline, **extra,
        )

    async def post(self, job: Job, reply: Reply):
        return await self.poster.post(reply, task_id=job.task_id, thread=job.thread, check_earlier=job.resumed)

    async def recall(self, job: Job, rec: ThreadRecord, query: str) -> list[Recollection]:
        t = job.task
        return await self.memory.recall(
            t.platform, t.workspace, t.channel, query, exclude_thread=rec.id, limit=self.config.recall_limit
        )

    async def working(self, job: Job, persona: Persona, thread: str | None) -> None:
        """Show that `persona` is working on this step (a placeholder her next post replaces)."""
        t = job.task
        await self.poster.working(Placeholder(
            key=f"wait:{job.task_id}:{job.step}:{persona.name}", task_id=job.task_id, platform=t.platform,
            workspace=t.workspace, channel=t.channel, thread=thread, persona=persona.name,
        ), persona.voice, resumed=job.resumed)

    async def human_turn(self, job: Job, rec: ThreadRecord, text: str) -> None:
        """Store the person's message once: a resumed task finds the turn it stored before."""
        earlier = await self.memory.turn_for_task(job.task_id, 0, TurnRole.HUMAN) if job.resumed else None
        if text and earlier is None:
            await self.memory.add_turn(
                TurnRecord(thread_id=rec.id, task_id=job.task_id, step=0, role=TurnRole.HUMAN, author=job.task.user, text=text)
            )

    async def notice(self, job: Job, persona: Persona, text: str, tag: str, kind: ReplyKind = ReplyKind.NOTICE) -> None:
        thread = job.thread.thread if job.thread else (job.task.thread or job.task.message_id)
        await self.post(job, self.reply(job, kind, persona, text, key=f"{tag}:{job.task_id}", thread=thread))

    # --- conversations ------------------------------------------------------------------------

    async def converse(self, job: Job, rec: ThreadRecord | None, speaker: Persona | None) -> ThreadRecord:
        t = job.task
        if rec is None:
            route = self.personas.route_by_domain(job.text)
            lead = speaker or self.personas[route.persona]
            earlier = await self.memory.get_thread(f"conv-{job.task_id}") if job.resumed else None
            rec = earlier or await self.memory.create_thread(
                ThreadRecord(
                    id=f"conv-{job.task_id}", kind=ThreadKind.CONVERSATION, platform=t.platform, workspace=t.workspace,
                    channel=t.channel, thread=t.thread or t.message_id or t.event_id, title=job.text[:200], lead=lead.name,
                )
            )
        job.thread = rec
        persona = speaker or self.personas.get(rec.lead) or self.personas[self.personas.default]
        job.persona = persona
        job.step = 1
        turns = await self.memory.turns(rec.id)
        await self.human_turn(job, rec, t.text.strip())
        turn = await job.earlier_turn(self.memory, 1)
        if turn is None:
            await self.working(job, persona, rec.thread)
            recalled = await self.recall(job, rec, job.text)
            outcome = await conversation_turn(
                self.provider, persona, question=job.text,
                memory=memory_text(recalled, self.config.context_tokens // 4),
                history=self._chat_history([x for x in turns if x.task_id != job.task_id], self.config.context_tokens // 2),
            )
            turn = await self.memory.add_turn(self._turn_record(job, rec, persona, outcome, route={
                "mode": "conversation", "persona": persona.name, "reasons": [self._why(job, persona, rec)],
                "recalled": [_recalled(r) for r in recalled],
            }))
            rec.turn_count += 1
            rec = await self.memory.update_thread(rec)
        await self.post(job, self.reply(job, ReplyKind.ANSWER, persona, turn.text, key=f"turn:{rec.id}:{turn.seq}", thread=rec.thread))
        return rec

    def _chat_history(self, turns: list[TurnRecord], budget: int) -> list[ChatMessage]:
        messages: list[ChatMessage] = []
        used = 0
        for turn in reversed(turns):
            content = turn.text if turn.role == TurnRole.HUMAN else f"{turn.author.capitalize()}: {turn.text}"
            content = clip_for_model(content, budget * 2)[0]
            used += estimate_tokens(content)
            if used > budget and messages:
                break
            messages.append(ChatMessage(role="user" if turn.role == TurnRole.HUMAN else "assistant", content=content))
        messages.reverse()
        while messages and messages[0].role == "assistant":  # models want to start with the user
            messages.pop(0)
        return messages

    def _why(self, job: Job, persona: Persona, rec: ThreadRecord) -> str:
        if job.task.persona or self.personas.split_addressee(job.task.text)[0]:
            return f"{persona.display_name} was named"
        if rec.lead == persona.name:
            route = self.personas.route_by_domain(rec.title)  # deterministic: the same as at the start
            how = route.reason if route.persona == persona.name else "she was named when it began"
            return f"{persona.display_name} leads this thread ({how})"
        return f"{persona.display_name} was replied to"

    # --- investigations -----------------------------------------------------------------------

    async def open_investigation(self, job: Job, named: Persona | None) -> ThreadRecord:
        t = job.task
        rec = await self.memory.get_thread(f"inv-{job.task_id}") if job.resumed else None
        if rec is None:
            route = self.personas.route_by_domain(job.text)
            lead = named or self.personas[route.persona]
            rec = await self.memory.create_thread(
                ThreadRecord(
                    id=f"inv-{job.task_id}", kind=ThreadKind.INVESTIGATION, platform=t.platform, workspace=t.workspace,
                    channel=t.channel, thread=None, title=job.text[:200], inv_type=classify(job.text), lead=lead.name,
                )
            )
        job.thread = rec
        lead = self.personas.get(rec.lead) or self.personas[self.personas.default]
        job.persona = lead
        if rec.thread is None:
            cast = ", ".join(f"{mode} {self.cast(Mode(mode)).display_name}" for mode in ("researcher", "critic", "planner"))
            text = (
                f"🔎 Investigation {rec.id}: {rec.title}\n"
                f"Lead: {lead.display_name} · Cast: {cast} · Type: {rec.inv_type}\n"
                f"Reply in this thread to add evidence; the personas take it from there."
            )
            posted = await self.post(job, self.reply(job, ReplyKind.ROOT, lead, text, key=f"root:{rec.id}", thread=None,
                                                     investigation_id=rec.id, title=rec.title))
            rec.thread = posted.thread or posted.message_id
            rec = await self.memory.update_thread(rec)
            job.thread = rec
        await self.human_turn(job, rec, t.text.strip())
        return await self.investigate(job, rec, named)

    async def investigate(self, job: Job, rec: ThreadRecord, speaker: Persona | None, forced: Mode | None = None) -> ThreadRecord:
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
                    await self.notice(job, self.cast(Mode.PLANNER), (
                        f"This investigation reached its limit of {cfg.max_turns} turns, so I am closing it here. "
                        "The latest findings above are where we stand; start a new one with /investigate to go further."
                    ), "limit")
                    crash_point("notice_posted")
                    rec.status = ThreadStatus.CLOSED
                    rec = await self.memory.update_thread(rec)
                    break
                if step > cfg.max_auto_turns:
                    await self.notice(job, self.personas.get(rec.lead) or self.cast(Mode.PLANNER), (
                        f"That's {cfg.max_auto_turns} turns in a row without hearing from you, so I'm pausing here. "
                        "Reply in this thread with more evidence (or just 'continue'), or use challenge / plan / close."
                    ), "paused")
                    crash_point("notice_posted")
                    rec.status = ThreadStatus.PAUSED
                    rec = await self.memory.update_thread(rec)
                    break
                turn = await self._new_turn(job, rec, turns, speaker if step == 1 else None, forced if step == 1 else None)
                turns = [*turns, turn]
            rec = await self._apply(job, rec, turn, turns)
            if rec.status != ThreadStatus.ACTIVE:
                break
            step += 1
        return rec

    async def _new_turn(self, job: Job, rec: ThreadRecord, turns: list[TurnRecord], speaker: Persona | None, forced: Mode | None) -> TurnRecord:
        decision = self.router.decide(router_state(rec, turns, self.config.max_turns, forced))
        mode = decision.mode
        persona = speaker or self.cast(mode)
        job.persona = persona
        await self.working(job, persona, rec.thread)
        if job.recalled is None:  # the same question all through this task: look it up once
            latest = next((t.text for t in reversed(turns) if t.role == TurnRole.HUMAN), rec.title)
            job.recalled = await self.recall(job, rec, f"{rec.title} {latest[:500]}")
        recalled = job.recalled
        context = (
            f"Investigation {rec.id} ({rec.inv_type}): {rec.title}\n"
            f"Phase: {MODE_PHASE[mode].value}. This is turn {rec.turn_count + 1} of at most {self.config.max_turns}.\n\n"
            f"Thread so far:\n{history_text(turns, self.config.context_tokens)}\n\n"
            f"Now do your {mode.value} turn on this investigation."
        )
        outcome: TurnOutcome = await structured_turn(
            self.provider, persona, mode, task=clip_for_model(rec.title)[0],
            memory=memory_text(recalled, self.config.context_tokens // 4), context=context,
        )
        route = {
            **decision.as_dict(), "persona": persona.name,
            "persona_reason": "named by a person" if speaker else f"the cast's {mode.value}",
            "recalled": [_recalled(r) for r in recalled],
        }
        if not outcome.structured:
            route["problems"] = outcome.problems
        previous = next((t.confidence for t in reversed(turns) if t.confidence), None)
        return await self.memory.add_turn(self._turn_record(
            job, rec, persona, outcome, route=route,
            confidence=confidence_of(mode, outcome.finding) if mode != Mode.PLANNER or not outcome.finding else (previous or Confidence.HIGH.value),
        ))

    async def _apply(self, job: Job, rec: ThreadRecord, turn: TurnRecord, turns: list[TurnRecord]) -> ThreadRecord:
        """Move the state machine for a turn, post it, then store the new state. Idempotent: safe
        to repeat on resume."""
        mode = Mode(turn.mode)
        persona = self.personas.get(turn.author) or self.cast(mode)
        rec.turn_count = sum(1 for t in turns if t.role == TurnRole.PERSONA)
        if turn.structured:
            rec.phase = next_phase(mode, turn.findings)
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
        heading = f"{persona.display_name} · {mode.value}" + (f" · confidence {turn.confidence}" if turn.confidence else "")
        text = f"{heading}\n{turn.text}"
        if not turn.structured:
            problems = "; ".join((turn.route or {}).get("problems", [])[:3]) or "it did not match the schema"
            text = (f"{heading}\n⚠️ Unstructured answer: the model's reply did not pass validation after one retry "
                    f"({problems}). Shown as written, not used to move the investigation on:\n{turn.text}")
        await self.post(job, self.reply(
            job, ReplyKind.TURN, persona, text, key=f"turn:{rec.id}:{turn.seq}", thread=rec.thread, mode=mode.value,
            content=turn.findings, structured=turn.structured, investigation_id=rec.id, title=heading, actions=actions,
        ))
        if questions:
            asks = "\n".join(f"• {q}" for q in questions)
            await self.post(job, self.reply(job, ReplyKind.QUESTION, persona, (
                f"I need your help before going further. Only people here can answer:\n{asks}\n"
                "Reply in this thread and I'll pick it up from there."
            ), key=f"ask:{rec.id}:{turn.seq}", thread=rec.thread, investigation_id=rec.id))
        elif rec.status == ThreadStatus.COMPLETE:
            lead = self.personas.get(rec.lead) or persona
            await self.post(job, self.reply(job, ReplyKind.NOTICE, lead, (
                f"✅ Investigation {rec.id} is complete after {rec.turn_count} turns. Reply here with new evidence "
                "to reopen it, or use challenge to have the plan questioned."
            ), key=f"done:{rec.id}:{turn.seq}", thread=rec.thread, investigation_id=rec.id))
        crash_point("turn_posted")
        # Stored after the posts: a crash before this resumes the task, which replays this turn
        # (posts already made are skipped by key) instead of finding a state nobody was told of.
        rec = await self.memory.update_thread(rec)
        job.thread = rec
        return rec

    def _turn_record(self, job: Job, rec: ThreadRecord, persona: Persona, outcome: TurnOutcome, *, route: dict, confidence: str | None = None) -> TurnRecord:
        return TurnRecord(
            thread_id=rec.id, task_id=job.task_id, step=job.step, role=TurnRole.PERSONA, author=persona.name,
            mode=outcome.mode, text=outcome.text, findings=outcome.finding, structured=outcome.structured,
            confidence=confidence, route=route, input_tokens=outcome.usage.input_tokens,
            output_tokens=outcome.usage.output_tokens, model=outcome.model or None,
        )


def _recalled(r: Recollection) -> dict:
    return {"thread_id": r.thread_id, "title": r.title, "author": r.author, "excerpt": r.text[:200], "score": round(r.score, 4)}
