"""What every kind of thread shares: the task being worked on (`Job`), the engine's settings,
and the plumbing both flows use to speak (replies, placeholders, notices) and to remember
(the person's turn, recall, thread ids).

The flows themselves: `engine.conversation_flow` (one answer per message) and
`engine.investigation_flow` (turns until an investigation completes or needs people).

Every step is written to memory as it happens, and every step checks memory first, so a task
that is resumed after a crash continues where it stopped: turns already produced are not asked
of the model again, replies already posted are not posted again (see `engine.posting`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from engine.memory.records import (
    Placeholder,
    Recollection,
    ThreadKind,
    ThreadRecord,
    TurnRecord,
    TurnRole,
)
from engine.intake import Intake
from engine.models import Reply, ReplyKind, Task
from engine.personas import Persona, PersonaRegistry
from engine.ports import Provider
from engine.posting import Poster
from engine.text import slug
from engine.turns import TurnOutcome

OFFLINE_MARK = (
    "🧪 Offline rehearsal (no model configured: set ANTHROPIC_API_KEY or OPENAI_API_KEY, "
    "or OPENAI_BASE_URL for a local server)"
)
OFFLINE_SHORT_MARK = "🧪 Offline rehearsal"

#: How many conversations may be at once in the steps before their model call, and in those after.
STAGE_WIDTH = 16


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

    async def under_way(self, memory) -> bool:
        """A resumed task that already made a turn. What it did to the thread before its first
        turn (reopen it, jump to planning) is stored and was built upon: doing it again would move
        the thread back, so such a task only replays its turns (see `InvestigationFlow.run`)."""
        return await self.earlier_turn(memory, 1) is not None


class Flows:
    """The plumbing both flows share, so a reply, a notice or a stored turn looks the same
    whichever flow made it."""

    def __init__(self, memory, provider: Provider, personas: PersonaRegistry, poster: Poster, config: EngineConfig):
        self.memory = memory
        self.provider = provider
        self.personas = personas
        self.poster = poster
        self.config = config
        self.intake = Intake()  # the engine's own replaces it: a post waits for the acks owed before it
        # A burst's mentions all want the loop at once, and asyncio serves them a step each in
        # turn: with hundreds under way, every one finishes late and together (seconds without a
        # post). A few at a time before the model call and after it, each finishes in
        # milliseconds and the posts flow; the model calls themselves still overlap (CallLimit).
        self.starting = asyncio.Semaphore(STAGE_WIDTH)
        self.finishing = asyncio.Semaphore(STAGE_WIDTH)

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
        await self.intake.settled()
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

    def turn_record(self, job: Job, rec: ThreadRecord, persona: Persona, outcome: TurnOutcome, *, route: dict, confidence: str | None = None) -> TurnRecord:
        self.poster.observers.turn(outcome.mode)
        return TurnRecord(
            thread_id=rec.id, task_id=job.task_id, step=job.step, role=TurnRole.PERSONA, author=persona.name,
            mode=outcome.mode, text=outcome.text, findings=outcome.finding, structured=outcome.structured,
            confidence=confidence, route=route, input_tokens=outcome.usage.input_tokens,
            output_tokens=outcome.usage.output_tokens, model=outcome.model or None,
        )

    async def thread_id(self, job: Job, kind: ThreadKind) -> str:
        """The readable id of the thread this task opens, the same if the task is resumed.

        Investigations are numbered per channel name: the first in #payments is `payments-1`,
        then `payments-2`; conversations are `payments-c1`, `payments-c2`. Slack channel ids
        become lower case (`c0123abc-1`). Ids are shown to people (`orchestra reply payments-1`,
        `memory list`) and are unique across platforms and workspaces: see
        `Memory.thread_id_for_task` (engine.memory.port).
        """
        return await self.memory.thread_id_for_task(job.task_id, thread_id_stem(job.task.channel, kind))


def thread_id_stem(channel: str, kind: ThreadKind) -> str:
    """`payments-` for investigations, `payments-c` for conversations (then the number).

    The number is always last and digits only, so two stems can never produce the same id.
    """
    return f"{slug(channel)}-" + ("c" if kind == ThreadKind.CONVERSATION else "")


def recalled_summary(r: Recollection) -> dict:
    """What a turn's route keeps of a recollection: enough to see why it was recalled."""
    return {"thread_id": r.thread_id, "title": r.title, "author": r.author, "excerpt": r.text[:200], "score": round(r.score, 4)}


class FlowPart:
    """A flow built on the shared plumbing: it reaches memory, provider, personas and config
    through the one `Flows` it is given."""

    def __init__(self, flows: Flows):
        self.flows = flows
        self.memory = flows.memory
        self.provider = flows.provider
        self.personas = flows.personas
        self.config = flows.config
