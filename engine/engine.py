"""The engine's front door: accept tasks, run them in order per thread, resume them after a
restart. The queries adapters and the CLI ask (memory list, persona cards) are in `engine.queries`.

    engine = Engine(memory, provider, personas, EngineConfig())
    engine.register_outbox("slack", slack_outbox)
    await engine.start()                 # resumes tasks left unfinished by a crash or restart
    accepted = await engine.submit(task) # stored (deduped by event id) before it returns
    await engine.wait_idle()             # tests and the CLI: until all accepted work is done

`submit` returns as soon as the task is in SQLite; the work happens in a background asyncio
task that holds the thread's lane, so turns in one thread run in order and different threads
run concurrently.
"""

from __future__ import annotations

import asyncio
import logging

from engine.context import clip_for_model
from engine.crews.flow import CrewFlow
from engine.crews.runner import CrewModel, CrewRunner
from engine.conversation_flow import ConversationFlow
from engine.flows import EngineConfig, Flows, Job
from engine.intake import Intake
from engine.investigation_flow import InvestigationFlow
from engine.memory.records import (
    Phase,
    StoredTask,
    TaskStatus,
    ThreadKind,
    ThreadRecord,
    ThreadStatus,
)
from engine.models import MAX_TASK_TEXT, Accepted, Reply, ReplyKind, Task, TaskKind
from engine.modes import Mode
from engine.observe import ObservedProvider, Observers
from engine.personas import Persona, PersonaRegistry
from engine.ports import Outbox, Provider, ProviderError
from engine.posting import NoOutbox, Poster
from engine.queries import EngineQueries
from engine.replicas import LocalReplica, Replica, TaskTaken

log = logging.getLogger(__name__)

CONTINUE_WORDS = {"continue", "go on", "resume", "keep going", "next"}

__all__ = ["Engine", "EngineConfig"]


class Engine(EngineQueries):
    def __init__(self, memory, provider: Provider, personas: PersonaRegistry, config: EngineConfig | None = None,
                 crews: CrewModel | None = None, crew_runner: CrewRunner | None = None,
                 replica: Replica | None = None):
        super().__init__(memory, personas, config or EngineConfig())
        self.provider = provider
        self.observers = Observers()  # metrics: `engine.observers.add(observer)` (engine.observe)
        self.poster = Poster(memory, self.observers)
        self.flows = Flows(memory, ObservedProvider(provider, self.observers), personas, self.poster, self.config)
        self.conversations = ConversationFlow(self.flows)
        self.investigations = InvestigationFlow(self.flows)
        self.crews = CrewFlow(self.flows, crews or CrewModel(), crew_runner)
        # lanes, task owners and orphans: this process alone, or one of several (engine.replicas)
        self.replica: Replica = replica if replica is not None else LocalReplica(memory)
        # acknowledgements first: adapters count the acks they owe here (`intake.taking()`), and
        # a task's work starts, and each of its posts goes out, once the acks owed before are out
        self.intake = Intake()
        self.flows.intake = self.intake
        self._jobs: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    # --- wiring -------------------------------------------------------------------------------

    def register_outbox(self, platform: str, outbox: Outbox) -> None:
        self.poster.register(platform, outbox)

    @property
    def lanes(self) -> Replica:
        """The lanes (`hold(key)`; `len()`: how many are busy here), held through the replica."""
        return self.replica

    @property
    def in_flight(self) -> int:
        """Tasks accepted and not finished (waiting for their lane or running): the queue depth."""
        return len(self._jobs)

    async def start(self) -> int:
        """Resume the unfinished tasks of the platforms that are running (with several replicas:
        those whose replica is gone, now and then while this one runs). Returns how many.

        Tasks of a platform not running now (Slack work while only the terminal runs) wait for it.
        """
        await self.replica.start()
        resumable = await self.replica.claim_orphans(self.poster.outboxes)
        unfinished = {s.id for s in await self.memory.unfinished_tasks()}
        # A placeholder whose task will not resume (it failed and its report did not get out)
        # would say "thinking" for ever: turn it into a notice. Resumed tasks replace their own,
        # and so do the tasks another replica is running.
        for waiting in await self.memory.placeholders():
            if waiting.platform in self.poster.outboxes and waiting.task_id not in unfinished:
                async with self.replica.hold(("settle", waiting.key)):  # one replica posts it
                    await self._settle_placeholder(waiting)
        for stored in resumable:
            self._schedule(stored, resumed=True)
        if self.replica.sweep_every and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="orphan-sweep")
        return len(resumable)

    async def _sweep(self) -> None:
        """Several replicas: take over the unfinished tasks of replicas that died, when the
        replica says some wait (its heartbeat looks): an idle replica sweeps nothing."""
        while True:
            await self.replica.orphans_waiting()
            try:
                orphans = await self.replica.claim_orphans(self.poster.outboxes)
            except Exception:  # noqa: BLE001 - the database may be away: try again later
                log.warning("could not look for orphaned tasks", exc_info=True)
                continue
            if orphans:
                log.info("taking over %d task(s) of a replica that stopped", len(orphans))
            for stored in orphans:
                self._schedule(stored, resumed=True)

    async def stop(self, grace: float | None = None) -> None:
        """Let running turns finish, for at most `grace` seconds when given.

        Work still running after that is cancelled: its task stays RUNNING in the memory and
        resumes on the next start (or at once on another replica), and nothing already posted
        is posted again.
        """
        if self._sweeper is not None:  # take over nothing more while stopping
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if grace is not None and self._jobs:
            _, pending = await asyncio.wait(list(self._jobs), timeout=grace)
            for job in pending:
                job.cancel()
            if pending:
                log.warning("%d task(s) cut short; they resume on the next start", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        await self.wait_idle()
        await self.replica.stop()

    # --- tasks --------------------------------------------------------------------------------

    async def submit(self, task: Task) -> Accepted:
        accepted = await self.memory.accept_task(task)
        if not accepted.duplicate:
            self.observers.task_accepted(task)
            self._schedule(StoredTask(id=accepted.task_id, task=task, status=TaskStatus.ACCEPTED))
        return accepted

    async def run(self, task: Task) -> ThreadRecord | None:
        """Submit and wait for this task's work to finish; the thread it worked on (CLI)."""
        accepted = await self.memory.accept_task(task)
        if accepted.duplicate:
            return None
        self.observers.task_accepted(task)
        return await self._schedule(StoredTask(id=accepted.task_id, task=task, status=TaskStatus.ACCEPTED))

    async def wait_idle(self) -> None:
        while self._jobs:
            await asyncio.gather(*list(self._jobs), return_exceptions=True)

    def _schedule(self, stored: StoredTask, resumed: bool = False) -> asyncio.Task:
        job = asyncio.create_task(self._work(stored, resumed), name=f"task-{stored.id}")
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return job

    async def _work(self, stored: StoredTask, resumed: bool) -> ThreadRecord | None:
        if not resumed:  # a resumed task was claimed: it is this replica's already
            try:
                mine = await self.replica.own(stored.id)
            except Exception:  # noqa: BLE001 - unowned, it is taken over (here or elsewhere) after the lease
                log.warning("task %s: could not record its owner; it resumes after the replica lease", stored.id,
                            exc_info=True)
                return None
            if not mine:
                log.info("task %s is another replica's: left to it", stored.id)
                return None
        await self.intake.settled()  # this task's own ack (and every one owed before) goes out first
        try:
            async with self.replica.hold_task(stored):
                return await self._process(stored, resumed)
        except TaskTaken:
            log.warning("task %s was taken over by another replica while it waited: left to it", stored.id)
            return None

    async def _process(self, stored: StoredTask, resumed: bool = False) -> ThreadRecord | None:
        task = stored.task
        named, rest = self.personas.split_addressee(task.text)
        if task.persona:
            named = self.personas.get(task.persona) or named
        text, clipped = clip_for_model(rest)
        job = Job(task_id=stored.id, task=task, text=text, clipped=clipped, persona=named, resumed=resumed)
        status, error, rec = TaskStatus.DONE, None, None
        try:
            if resumed:  # fresh tasks go straight from accepted to done: one write fewer a task
                await self.memory.set_task_status(stored.id, TaskStatus.RUNNING)
            rec = await self._dispatch(job, named)
        except ProviderError as e:
            if not getattr(e, "reported", False):  # a crew tells its own failure (engine.crews.flow)
                await self._report_failure(job, e.reason)
            status, error = TaskStatus.FAILED, f"{e.kind}: {e.reason}"
        except NoOutbox:
            log.error("task %s: no outbox for platform %r", stored.id, task.platform)
            status, error = TaskStatus.FAILED, "no outbox for platform"
        except KeyError as e:
            # the channel was forgotten while this task ran: its records are gone, and so is the work
            log.info("task %s: its records were removed while it ran (%s)", stored.id, e)
            return None
        except Exception as e:  # noqa: BLE001 - a bug must not kill the worker or leak a trace
            log.exception("task %s failed", stored.id)
            await self._report_failure(job, "Something went wrong on my side (the details are in the bot's log).")
            status, error = TaskStatus.FAILED, f"internal: {e.__class__.__name__}"
        try:
            for waiting in await self.memory.placeholders(stored.id):  # none unless a post went astray
                await self._settle_placeholder(waiting)
            await self.memory.set_task_status(stored.id, status, error)
            self.observers.task_finished(task, status)
        except KeyError:
            log.info("task %s: forgotten before it finished", stored.id)
        return rec if status == TaskStatus.DONE else job.thread

    async def _settle_placeholder(self, waiting) -> None:
        """Replace a placeholder that no post of its task will replace with a clear notice."""
        persona = self.personas.get(waiting.persona) or self.personas[self.personas.default]
        reply = Reply(
            kind=ReplyKind.NOTICE, voice=persona.voice, platform=waiting.platform, workspace=waiting.workspace,
            channel=waiting.channel, thread=waiting.thread, key=f"settle:{waiting.key}",
            text=(f"{persona.display_name} here: I was interrupted before I could finish this. "
                  "Nothing is lost: reply in this thread (or say 'continue') and I'll pick it up."),
        )
        try:
            await self.poster.post(reply, task_id=waiting.task_id, thread=None)
        except Exception:  # noqa: BLE001 - the platform may be down: try again on the next start
            log.warning("could not replace placeholder %s", waiting.key, exc_info=True)

    async def _report_failure(self, job: Job, reason: str) -> None:
        """Tell the thread in the speaking persona's voice, and leave the thread resumable."""
        persona = job.persona or self.personas[self.personas.default]
        text = (
            f"{persona.display_name} here: I couldn't finish this. {reason} "
            "Nothing is lost: reply in this thread (or say 'continue') to try again."
        )
        try:  # told before the pause is stored: a crash in between resumes and tells again (once)
            await self.flows.notice(job, persona, text, f"error{job.step}", ReplyKind.ERROR)
        except Exception:  # noqa: BLE001 - the platform itself may be what failed
            log.exception("could not report failure of task %s", job.task_id)
        rec = job.thread
        if rec is not None and rec.status == ThreadStatus.ACTIVE:
            rec.status = ThreadStatus.PAUSED
            job.thread = await self.memory.update_thread(rec)

    async def _dispatch(self, job: Job, named: Persona | None) -> ThreadRecord | None:
        """Hold the investigation's own lane too: a reply that arrives while the opening turns
        still run (its platform thread differs from the /investigate event) waits its turn."""
        rec = await self._thread_of(job.task)
        rec_id = rec.id if rec else None
        if rec is None and job.task.kind == TaskKind.INVESTIGATE and job.text:
            # the id the investigation will have (given now, kept for it): its follow-ups queue here
            rec_id = await self.flows.thread_id(job, ThreadKind.INVESTIGATION)
        if rec_id is None:
            return await self._handle(job, named, None)
        async with self.replica.hold(("thread", rec_id), job.task_id):
            if rec is not None:
                rec = await self.memory.get_thread(rec.id)  # it may have moved on while we waited
            return await self._handle(job, named, rec)

    async def _handle(self, job: Job, named: Persona | None, rec: ThreadRecord | None) -> ThreadRecord | None:
        task, flows = job.task, self.flows
        default = self.personas[self.personas.default]
        unknown = None if named else self.personas.unknown_addressee(task.text)
        if task.persona and not self.personas.get(task.persona):
            unknown = task.persona
        job.thread = rec

        if task.kind in (TaskKind.CHALLENGE, TaskKind.PLAN, TaskKind.CLOSE, TaskKind.CONTINUE):
            if rec is None or rec.kind != ThreadKind.INVESTIGATION:
                await flows.notice(job, default, "I can't find an investigation in this thread. Start one with /investigate TEXT.", "noinv")
                return rec
            return await self._act(job, rec, named)

        if unknown:
            speaker = named or (self.personas.get(rec.lead) if rec else None) or self.personas[self.personas.route_by_domain(job.text).persona]
            await flows.notice(job, speaker, (
                f"I don't know a persona called “{unknown}”. The personas are "
                f"{', '.join(p.display_name for p in self.personas)}; {speaker.display_name} will take this one."
            ), "unknown")
            named = named or speaker

        if task.kind == TaskKind.CREW:
            return await self.crews.start(job, named, rec)

        if not job.text:
            hint = (
                "Hi! Ask me something after the mention, for example “sophia, why did signups drop last week?”, "
                "or start an investigation with /investigate TEXT. Personas: "
                + ", ".join(f"{p.display_name} ({p.role})" for p in self.personas)
            )
            await flows.notice(job, named or default, hint, "empty")
            return rec

        if job.clipped:
            await flows.notice(job, named or default, (
                f"Your message is {len(task.text):,} characters; I read the first {MAX_TASK_TEXT:,}. "
                "The whole text is saved in this thread's memory."
            ), "clipped")

        if task.kind == TaskKind.INVESTIGATE:
            return await self.investigations.open(job, named)

        speaker = named
        if speaker is None and task.reply_to:
            speaker = self.personas.get(
                await self.memory.persona_for_message(task.platform, task.workspace, task.channel, task.reply_to)
            )
        if rec is not None and rec.kind == ThreadKind.INVESTIGATION:
            return await self._follow_up(job, rec, speaker)
        return await self.conversations.converse(job, rec, speaker)

    async def _thread_of(self, task: Task) -> ThreadRecord | None:
        if not task.thread:
            return None
        return await self.memory.find_thread(task.platform, task.workspace, task.channel, task.thread)

    async def _follow_up(self, job: Job, rec: ThreadRecord, speaker: Persona | None) -> ThreadRecord:
        """A person's reply in an investigation: new evidence, and the investigation goes on."""
        if await job.under_way(self.memory):  # resumed: only replay its turns (see Job.under_way)
            return await self.investigations.run(job, rec, speaker)
        lead = self.personas.get(rec.lead) or self.personas[self.personas.default]
        if rec.status == ThreadStatus.CLOSED:
            await self.flows.notice(job, lead, (
                f"Investigation {rec.id} is closed. Start a new one with /investigate TEXT; "
                "it will remember what we found here."
            ), "closed")
            return rec
        if job.text.lower().strip(" .!") not in CONTINUE_WORDS:
            await self.flows.human_turn(job, rec, job.task.text.strip())
        if rec.status != ThreadStatus.ACTIVE:
            if rec.status == ThreadStatus.COMPLETE:
                rec.phase = Phase.DISCOVERY
            rec.status = ThreadStatus.ACTIVE
            rec = await self.memory.update_thread(rec)
        return await self.investigations.run(job, rec, speaker)

    async def _act(self, job: Job, rec: ThreadRecord, named: Persona | None) -> ThreadRecord:
        if await job.under_way(self.memory):  # resumed: only replay its turns (see Job.under_way)
            return await self.investigations.run(job, rec, named)
        kind = job.task.kind
        lead = self.personas.get(rec.lead) or self.personas[self.personas.default]
        if kind == TaskKind.CLOSE:
            if rec.status == ThreadStatus.CLOSED:  # a second /close, or two people clicking Close
                await self.flows.notice(job, lead, (
                    f"Investigation {rec.id} is already closed. Start a new one with /investigate TEXT; "
                    "it will remember what we found here."
                ), "closed")
                return rec
            # `<@id>`: the mention Slack and Discord share; their adapters notify only the asker
            who = f"<@{job.task.user}>" if job.task.platform in ("slack", "discord") else job.task.user
            await self.flows.notice(job, lead, (
                f"Investigation {rec.id} closed by {who} after {rec.turn_count} turns, in the {rec.phase.value} phase. "
                "This channel will remember it."
            ), "close")
            # stored after its notice: a crash between the two resumes this task, which finds the
            # notice by its key and then stores the close (never closed without a word)
            rec.status = ThreadStatus.CLOSED
            return await self.memory.update_thread(rec)
        if rec.status == ThreadStatus.CLOSED:
            await self.flows.notice(job, lead, f"Investigation {rec.id} is closed; start a new one with /investigate TEXT.", "closed")
            return rec
        forced = None
        if kind == TaskKind.PLAN:
            rec.phase, forced = Phase.PLANNING, Mode.PLANNER
        elif kind == TaskKind.CHALLENGE:
            rec.phase, forced = Phase.VALIDATION, Mode.CRITIC
        rec.status = ThreadStatus.ACTIVE
        rec = await self.memory.update_thread(rec)
        return await self.investigations.run(job, rec, named, forced)
