"""The two kinds of thread: a conversation (one answer per message) and an investigation (turns).

Every step is written to memory as it happens, and every step checks memory first, so a task
that is resumed after a crash continues where it stopped: turns already produced are not asked
of the model again, replies already posted are not posted again (see `engine.posting`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.context import clip_for_model, estimate_tokens, history_text, memory_text
from engine.findings import Confidence
from engine.investigation import (
    asked_before,
    confidence_of,
    next_phase,
    open_checks,
    questions_for_people,
    router_state,
    stuck_questions,
)
from engine.crashpoints import crash_point
from engine.memory.records import Phase, Placeholder, Recollection, ThreadKind, ThreadRecord, ThreadStatus, TurnRecord, TurnRole
from engine.models import Action, Reply, ReplyKind, Task, TaskKind
from engine.modes import Mode
from engine.personas import Persona, PersonaRegistry
from engine.ports import ChatMessage, Provider
from engine.posting import Poster
from engine.router import MODE_PHASE, Router, classify
from engine.text import slug
from engine.turns import TurnOutcome, conversation_turn, structured_turn

OFFLINE_MARK = (
    "🧪 Offline rehearsal (no model configured: set ANTHROPIC_API_KEY or OPENAI_API_KEY, "
    "or OPENAI_BASE_URL for a local server)"
)
OFFLINE_SHORT_MARK = "🧪 Offline rehearsal"


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
        """Who the configuration says speaks this mode."""
        return self.personas.get(self.config.cast.get(mode.value)) or self.personas[self.personas.default]

    def speaker(self, mode: Mode, turns: list[TurnRecord], named: Persona | None) -> tuple[Persona, str]:
        """Who really speaks this turn, and why: the named persona, else the cast; never a critic
        challenging her own finding (then a stand-in does, see `_stand_in`)."""
        persona = named or self.cast(mode)
        why = "named by a person" if named else f"the cast's {mode.value}"
        if mode == Mode.CRITIC:
            authors = _challenged_authors(turns)
            if persona.name in authors:
                other = self._stand_in(authors)
                if other is not None:
                    why = (f"{persona.display_name} wrote the finding under challenge, "
                           f"so {other.display_name} challenges it instead")
                    persona = other
        return persona, why

    def _stand_in(self, authors: list[str]) -> Persona | None:
        """A critic who wrote none of the findings under challenge: whoever prefers the critic mode,
        then the cast's researcher and planner, then anyone (registry order keeps it deterministic)."""
        for exclude in (authors, authors[:1]):
            candidates = [p for p in self.personas if Mode.CRITIC in p.preferred_modes]
            candidates += [self.cast(Mode.RESEARCHER), self.cast(Mode.PLANNER), *self.personas]
            for p in candidates:
                if p.name not in exclude:
                    return p
        return None

    def opening_cast(self, named: Persona | None) -> dict[str, Persona]:
        """Who speaks each mode when the investigation opens: the named lead researches first,
        and the critic is someone other than her."""
        researcher = named or self.cast(Mode.RESEARCHER)
        critic = self.cast(Mode.CRITIC)
        if critic.name == researcher.name:
            critic = self._stand_in([researcher.name]) or critic
        return {"researcher": researcher, "critic": critic, "planner": self.cast(Mode.PLANNER)}

    def reply(self, job: Job, kind: ReplyKind, persona: Persona, text: str, *, key: str, thread: str | None,
              first_in_thread: bool = False, **extra) -> Reply:
        offline = self.provider.name == "offline"
        if offline and (kind == ReplyKind.ROOT or first_in_thread):
            text = f"{OFFLINE_MARK}\n{text}"  # how to leave the rehearsal: once per thread is enough
        elif offline and kind in (ReplyKind.TURN, ReplyKind.ANSWER, ReplyKind.QUESTION):
            text = f"{OFFLINE_SHORT_MARK}\n{text}"
        t = job.task
        return Reply(
            kind=kind, voice=persona.voice, platform=t.platform, workspace=t.workspace, channel=t.channel,
            thread=thread, text=text, key=key, offline=offline, asker=t.user, **extra,
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

    # --- thread ids ---------------------------------------------------------------------------

    async def thread_id(self, job: Job, kind: ThreadKind) -> str:
        """The readable id of the thread this task opens, the same if the task is resumed.

        Investigations are numbered per channel name: the first in #payments is `payments-1`,
        then `payments-2`; conversations are `payments-c1`, `payments-c2`. Slack channel ids
        become lower case (`c0123abc-1`). Ids are shown to people (`orchestra reply payments-1`,
        `memory list`) and are unique across platforms and workspaces: see
        `SQLiteMemory.thread_id_for_task`.
        """
        return await self.memory.thread_id_for_task(job.task_id, thread_id_stem(job.task.channel, kind))

    # --- conversations ------------------------------------------------------------------------

    async def converse(self, job: Job, rec: ThreadRecord | None, speaker: Persona | None) -> ThreadRecord:
        t = job.task
        if rec is None:
            route = self.personas.route_by_domain(job.text)
            lead = speaker or self.personas[route.persona]
            thread_id = await self.thread_id(job, ThreadKind.CONVERSATION)
            earlier = await self.memory.get_thread(thread_id) if job.resumed else None
            rec = earlier or await self.memory.create_thread(
                ThreadRecord(
                    id=thread_id, kind=ThreadKind.CONVERSATION, platform=t.platform, workspace=t.workspace,
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
        first = not any(x.role == TurnRole.PERSONA and x.seq < turn.seq for x in turns)
        await self.post(job, self.reply(job, ReplyKind.ANSWER, persona, turn.text, key=f"turn:{rec.id}:{turn.seq}",
                                        thread=rec.thread, first_in_thread=first))
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
        thread_id = await self.thread_id(job, ThreadKind.INVESTIGATION)
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
            cast = ", ".join(f"{mode} {p.display_name}" for mode, p in self.opening_cast(named).items())
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
                        "Reply in this thread with more evidence (or just “continue”); the actions under the last turn "
                        "challenge it, move it to planning or close it."
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
        auto_left = self.config.max_auto_turns - job.step + 1
        decision = self.router.decide(router_state(rec, turns, self.config.max_turns, forced, auto_left=auto_left))
        mode = decision.mode
        persona, persona_reason = self.speaker(mode, turns, speaker)
        job.persona = persona
        await self.working(job, persona, rec.thread)
        if job.recalled is None:  # the same question all through this task: look it up once
            latest = next((t.text for t in reversed(turns) if t.role == TurnRole.HUMAN), rec.title)
            job.recalled = await self.recall(job, rec, f"{rec.title} {latest[:500]}")
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
            "recalled": [_recalled(r) for r in recalled],
        }
        if checks:
            route["open_checks"] = checks
            route["reasons"].append(f"planner: the plan must start with the {len(checks)} check(s) still open")
        if not outcome.structured:
            route["problems"] = outcome.problems
        previous = next((t.confidence for t in reversed(turns) if t.confidence), None)
        record = self._turn_record(
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
        """Move the state machine for a turn, post it, then store the new state. Idempotent: safe
        to repeat on resume."""
        mode = Mode(turn.mode)
        persona = self.personas.get(turn.author) or self.cast(mode)
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
            opening = ("We've gone round without getting past "
                       f"{turn.confidence or 'low'} confidence, and another round won't change that. "
                       if route.get("escalation") == "ask" else "")
            await self.post(job, self.reply(job, ReplyKind.QUESTION, persona, (
                f"{opening}I need your help before going further. Only people here can answer:\n{asks}\n"
                "Reply in this thread and I'll pick it up from there."
            ), key=f"ask:{rec.id}:{turn.seq}", thread=rec.thread, investigation_id=rec.id))
        elif rec.status == ThreadStatus.COMPLETE:
            lead = self.personas.get(rec.lead) or persona
            await self.post(job, self.reply(job, ReplyKind.NOTICE, lead, (
                f"✅ Investigation {rec.id} is complete after {rec.turn_count} turns. Reply here with new evidence "
                "to reopen it."
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


def _challenged_authors(turns: list[TurnRecord]) -> list[str]:
    """Who wrote what a critic turn now would challenge: the latest hypothesis first, and the plan
    when the latest turn is one (a person pressed Challenge after it)."""
    persona_turns = [t for t in turns if t.role == TurnRole.PERSONA and t.structured]
    authors: list[str] = []
    research = next((t for t in reversed(persona_turns) if t.mode == Mode.RESEARCHER), None)
    if research is not None:
        authors.append(research.author)
    if persona_turns and persona_turns[-1].mode == Mode.PLANNER and persona_turns[-1].author not in authors:
        authors.append(persona_turns[-1].author)
    return authors


def thread_id_stem(channel: str, kind: ThreadKind) -> str:
    """`payments-` for investigations, `payments-c` for conversations (then the number).

    The number is always last and digits only, so two stems can never produce the same id.
    """
    return f"{slug(channel)}-" + ("c" if kind == ThreadKind.CONVERSATION else "")


def _recalled(r: Recollection) -> dict:
    return {"thread_id": r.thread_id, "title": r.title, "author": r.author, "excerpt": r.text[:200], "score": round(r.score, 4)}
