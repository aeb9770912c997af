"""A crew as a durable engine flow: assemble → plan review → run → result → result review.

Each step is a stored turn of the crew's thread (kind `crew`), found again by the task's step
when the task resumes after a restart, and each post has a key, so a resume posts nothing twice.
The crew itself runs at most once per request: its first progress post is the mark that it
started, and a resumed task that finds the mark without a stored result reports the
interruption instead of running the crew again. Failures and `ORCHESTRA_CREW_TIMEOUT` are told
in the orchestrator's voice, the thread is paused and the task is stored as failed (not lost).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging

from engine.crews.request import CrewRequest, CrewRequestError
from engine.crews.reviews import plan_ask, result_ask, review, verdict
from engine.crews.runner import (
    INSTALL_HINT,
    CrewAIRunner,
    CrewFailed,
    CrewModel,
    CrewNotInstalled,
    CrewOutcome,
    CrewRunner,
    Progress,
)
from engine.crews.team import CrewPlan, assemble, infer_domain
from engine.crews.tools import ChannelTools
from engine.flows import FlowPart, Flows, Job
from engine.memory.records import (
    ThreadKind,
    ThreadRecord,
    ThreadStatus,
    TurnRecord,
    TurnRole,
)
from engine.models import ReplyKind
from engine.personas import Persona
from engine.ports import ProviderError
from engine.text import slug

log = logging.getLogger(__name__)

PLAN_STEP, RESULT_STEP, REVIEW_STEP = 1, 2, 3
USAGE_HINT = ("Tell me what the crew should do, for example “/crew sales high: grow the Q3 pipeline” "
              "(domains: sales, marketing, project, research, data, content; complexity: low, medium, high). "
              "In an investigation's thread, “/crew plan” hands its plan to a crew.")


class CrewReported(ProviderError):
    """The crew failed and the thread was told already, in the orchestrator's voice."""

    kind = "crew"
    reported = True


def crew_stem(channel: str) -> str:
    """`payments-crew` (then the number): never the same as an investigation's or conversation's id."""
    return f"{slug(channel)}-crew"


class CrewFlow(FlowPart):
    def __init__(self, flows: Flows, model: CrewModel, runner: CrewRunner | None = None):
        super().__init__(flows)
        self.model = model
        self.runner = runner or CrewAIRunner(model)  # imports crewai only when a crew runs

    # --- the flow -------------------------------------------------------------------------------

    async def start(self, job: Job, named: Persona | None, rec: ThreadRecord | None) -> ThreadRecord | None:
        flows, t = self.flows, job.task
        default = named or self.personas[self.personas.default]
        handoff = not job.text and rec is not None and rec.kind == ThreadKind.INVESTIGATION
        if not job.text and not handoff:
            await flows.notice(job, default, USAGE_HINT, "crewusage")
            return rec
        if not crew_installed():
            await flows.notice(job, default, (
                f"Crews need the crew extra, which is not installed here. Install it with: {INSTALL_HINT}"
            ), "crewinstall")
            return rec
        try:
            if handoff:
                plan, where = await self._handoff(job, named, rec)
                if plan is None:
                    return rec
            else:
                request = CrewRequest.from_options(job.text, t.options)
                plan = assemble(request, self.personas, named)
                where = t.thread
        except CrewRequestError as e:
            await flows.notice(job, default, str(e), "crewbad")
            return rec
        crew = await self._record(job, plan, rec if handoff else None, where)
        return await self._run_steps(job, crew, plan, rec if handoff else None)

    async def _handoff(self, job: Job, named: Persona | None, inv: ThreadRecord) -> tuple[CrewPlan | None, str | None]:
        """The investigation's latest plan as the crew's work, its lead as the orchestrator."""
        turns = await self.memory.turns(inv.id)
        planned = next((x for x in reversed(turns) if x.role == TurnRole.PERSONA and x.mode == "planner"), None)
        lead = named or self.personas.get(inv.lead) or self.personas[self.personas.default]
        if planned is None:
            await self.flows.notice(job, lead, (
                f"Investigation {inv.id} has no plan yet to hand to a crew. Move it to planning first; "
                "once the planner's turn is in, hand it over from there."
            ), "crewnoplan")
            return None, None
        work = f"Carry out the plan of investigation {inv.id} ({inv.title}):\n{planned.text}"
        request = CrewRequest.from_options(work, job.task.options)
        domain = request.domain or infer_domain(f"{inv.inv_type} {inv.title}")
        return assemble(request, self.personas, lead, domain=domain), inv.thread

    async def _record(self, job: Job, plan: CrewPlan, inv: ThreadRecord | None, where: str | None) -> ThreadRecord:
        """The crew's thread: created once (the same record when the task resumes), its root
        posted when it starts at the channel's top level."""
        t, flows = job.task, self.flows
        crew_id = await self.memory.thread_id_for_task(job.task_id, crew_stem(t.channel))
        rec = await self.memory.get_thread(crew_id) if job.resumed else None
        if rec is None:
            rec = await self.memory.create_thread(ThreadRecord(
                id=crew_id, kind=ThreadKind.CREW, platform=t.platform, workspace=t.workspace, channel=t.channel,
                thread=where, title=plan.work[:200], inv_type=plan.domain, lead=plan.orchestrator,
            ))
        lead = self.personas.get(rec.lead) or self.personas[self.personas.default]
        job.thread, job.persona = rec, lead
        if rec.thread is None:
            sizes = ", ".join(a.role for a in plan.agents)
            text = (f"🛠️ Crew {rec.id}: {rec.title}\nOrchestrator: {lead.display_name} · {plan.complexity} complexity · "
                    f"{plan.domain} · Team: {sizes}\nThe plan review, progress, result and review follow in this thread.")
            posted = await flows.post(job, flows.reply(job, ReplyKind.ROOT, lead, text, key=f"root:{rec.id}", thread=None,
                                                       title=rec.title))
            rec.thread = posted.thread or posted.message_id
            rec = await self.memory.update_thread(rec)
            job.thread = rec
        if inv is None:
            await flows.human_turn(job, rec, job.task.text.strip())
        return rec

    async def _run_steps(self, job: Job, rec: ThreadRecord, plan: CrewPlan, inv: ThreadRecord | None) -> ThreadRecord:
        lead = job.persona
        try:
            plan = await self._plan_review(job, rec, plan, lead)
            outcome = await self._crew(job, rec, plan, lead, inv)
            await self._result_review(job, rec, plan, lead, outcome)
        except CrewReported:
            raise
        except ProviderError as e:  # a review's model call failed
            await self._fail(job, rec, lead, e.reason, e.kind)
        rec = await self.memory.get_thread(rec.id) or rec
        rec.status = ThreadStatus.COMPLETE
        rec.turn_count = len([x for x in await self.memory.turns(rec.id) if x.role == TurnRole.PERSONA])
        rec = await self.memory.update_thread(rec)
        job.thread = rec
        return rec

    async def _plan_review(self, job: Job, rec: ThreadRecord, plan: CrewPlan, lead: Persona) -> CrewPlan:
        """Review the plan once; the plan stored with the review is the one the crew runs (a
        resumed task runs that, even if the personas changed since)."""
        job.step = PLAN_STEP
        turn = await job.earlier_turn(self.memory, PLAN_STEP)
        if turn is None:
            await self.flows.working(job, lead, rec.thread)
            text, usage, model = await self._ask(job, rec, lead, plan_ask(plan))
            content = {"review": text, "verdict": verdict(text, "go"), "agents": [a.model_dump(mode="json") for a in plan.agents],
                       "tasks": [t.model_dump(mode="json") for t in plan.tasks], "plan": plan.model_dump(mode="json")}
            turn = await self.memory.add_turn(TurnRecord(
                thread_id=rec.id, task_id=job.task_id, step=PLAN_STEP, role=TurnRole.PERSONA, author=lead.name,
                mode="crew-plan", text=f"Crew plan review by {lead.display_name}:\n{text}\n\n{plan.text()}", findings=content,
                input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, model=model or None,
            ))
        plan = CrewPlan.model_validate(turn.findings["plan"])
        heading = f"{lead.display_name} · crew plan"
        await self.flows.post(job, self.flows.reply(
            job, ReplyKind.TURN, lead, f"{heading}\n{turn.findings['review']}\n\n{plan.text()}", key=f"crew-plan:{rec.id}",
            thread=rec.thread, mode="crew-plan", title=heading,
            content={k: turn.findings[k] for k in ("review", "agents", "tasks")},
        ))
        return plan

    async def _crew(self, job: Job, rec: ThreadRecord, plan: CrewPlan, lead: Persona, inv: ThreadRecord | None) -> CrewOutcome:
        """Run the crew once: its first progress post marks that it started."""
        job.step = RESULT_STEP
        turn = await job.earlier_turn(self.memory, RESULT_STEP)
        if turn is None:
            started = f"crew-progress:{rec.id}:0:started"
            if job.resumed and (await self.memory.post_for_key(started) or await self.memory.has_intent(started)):
                await self._fail(job, rec, lead, (
                    "I was restarted while the crew was working, and I won't run it a second time on my own. "
                    "Start it again with /crew when you want a fresh run."), "interrupted")
            outcome = await self._kickoff(job, rec, plan, lead, inv)
            result = outcome.result or "(the crew delivered nothing)"
            usage = outcome.usage
            turn = await self.memory.add_turn(TurnRecord(
                thread_id=rec.id, task_id=job.task_id, step=RESULT_STEP, role=TurnRole.PERSONA, author=lead.name,
                mode="crew-result", text=f"Crew result ({plan.complexity} {plan.domain} crew of {lead.display_name}):\n{result}",
                findings={"result": result, "usage": usage, "outputs": outcome.outputs,
                          "rehearsal": self.model.offline},
                input_tokens=usage.get("prompt_tokens", 0), output_tokens=usage.get("completion_tokens", 0),
                model=self.model.model,
            ))
        found = turn.findings or {}
        outcome = CrewOutcome(result=found.get("result", ""), outputs=found.get("outputs", []), usage=found.get("usage", {}))
        usage = outcome.usage
        heading = f"{lead.display_name} · crew result"
        tokens = f"Usage: {usage.get('total_tokens', 0):,} tokens in {usage.get('requests', 0)} model call(s)."
        await self.flows.post(job, self.flows.reply(
            job, ReplyKind.TURN, lead, f"{heading}\n{outcome.result}\n\n{tokens}", key=f"crew-result:{rec.id}",
            thread=rec.thread, mode="crew-result", title=heading, content={"result": outcome.result, "usage": usage},
        ))
        return outcome

    async def _kickoff(self, job: Job, rec: ThreadRecord, plan: CrewPlan, lead: Persona, inv: ThreadRecord | None) -> CrewOutcome:
        progress: asyncio.Queue[Progress | None] = asyncio.Queue()
        first = Progress(plan.tasks[0].agent, plan.tasks[0].title, "started", 0)
        await self._progress(job, rec, lead, first)
        finished = asyncio.Event()
        poster = asyncio.create_task(self._post_progress(job, rec, lead, progress, finished))
        t = job.task
        tools = ChannelTools(self.memory, asyncio.get_running_loop(), platform=t.platform, workspace=t.workspace,
                             channel=t.channel, thread_ids=[x.id for x in (inv, rec) if x is not None],
                             exclude=rec.id, limit=self.config.recall_limit)
        try:
            outcome = await asyncio.wait_for(
                self.runner.run(plan, tools.specs(), lambda p: p != first and progress.put_nowait(p)),
                self.model.crew_timeout,
            )
        except TimeoutError:
            poster.cancel()
            await self._fail(job, rec, lead, (
                f"The crew ran past its time limit ({_duration(self.model.crew_timeout)}), so I stopped waiting for it. "
                "Nothing it produced is lost in the log; try a lower complexity, or raise ORCHESTRA_CREW_TIMEOUT."), "timeout")
        except CrewNotInstalled:
            poster.cancel()
            await self._fail(job, rec, lead, f"Crews need the crew extra: {INSTALL_HINT}", "not installed")
        except CrewFailed as e:
            poster.cancel()
            await self._fail(job, rec, lead, e.reason, "failed")
        except BaseException:
            poster.cancel()
            raise
        finished.set()
        progress.put_nowait(None)
        await poster
        return outcome

    async def _post_progress(self, job: Job, rec: ThreadRecord, lead: Persona, queue: asyncio.Queue,
                             finished: asyncio.Event) -> None:
        """Post progress in order, paced: at most one post per `progress_interval` while the crew
        works. What is still queued when it has finished goes out at once (the result waits)."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while (p := await queue.get()) is not None:
            wait = self.model.progress_interval - (loop.time() - last)
            if wait > 0 and not finished.is_set():
                await asyncio.sleep(wait)
            last = loop.time()
            try:
                await self._progress(job, rec, lead, p)
            except Exception:
                log.warning("crew %s: a progress post failed", rec.id, exc_info=True)

    async def _progress(self, job: Job, rec: ThreadRecord, lead: Persona, p: Progress) -> None:
        icon = "⏳" if p.status == "started" else "✔️"
        verb = "is working on" if p.status == "started" else "finished"
        await self.flows.post(job, self.flows.reply(
            job, ReplyKind.TURN, lead, f"{icon} {p.agent} {verb}: {p.task}", key=f"crew-progress:{rec.id}:{p.index}:{p.status}",
            thread=rec.thread, mode="crew-progress", title=f"{lead.display_name} · crew progress",
            content={"agent": p.agent, "task": p.task, "status": p.status},
        ))

    async def _result_review(self, job: Job, rec: ThreadRecord, plan: CrewPlan, lead: Persona, outcome: CrewOutcome) -> None:
        job.step = REVIEW_STEP
        turn = await job.earlier_turn(self.memory, REVIEW_STEP)
        if turn is None:
            await self.flows.working(job, lead, rec.thread)
            text, usage, model = await self._ask(job, rec, lead, result_ask(plan, outcome.result))
            turn = await self.memory.add_turn(TurnRecord(
                thread_id=rec.id, task_id=job.task_id, step=REVIEW_STEP, role=TurnRole.PERSONA, author=lead.name,
                mode="crew-review", text=f"Crew result review by {lead.display_name}:\n{text}",
                findings={"review": text, "verdict": verdict(text, "reviewed")},
                input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, model=model or None,
            ))
        heading = f"{lead.display_name} · crew review"
        await self.flows.post(job, self.flows.reply(
            job, ReplyKind.TURN, lead, f"{heading}\n{turn.findings['review']}", key=f"crew-review:{rec.id}",
            thread=rec.thread, mode="crew-review", title=heading, content=dict(turn.findings),
        ))

    # --- helpers --------------------------------------------------------------------------------

    async def _ask(self, job: Job, rec: ThreadRecord, lead: Persona, ask: str):
        """The orchestrator's review, through the personas' own model (her voice)."""
        response = await review(self.provider, lead, ask, await self.flows.recall(job, rec, rec.title))
        return response.text.strip(), response.usage, response.model

    async def _fail(self, job: Job, rec: ThreadRecord, lead: Persona, reason: str, kind: str) -> None:
        """Tell the thread in the orchestrator's voice, pause the crew's thread, fail the task."""
        await self.flows.post(job, self.flows.reply(
            job, ReplyKind.ERROR, lead, f"{lead.display_name} here: the crew didn't finish. {reason}",
            key=f"crew-failed:{rec.id}", thread=rec.thread,
        ))
        rec = await self.memory.get_thread(rec.id) or rec
        rec.status = ThreadStatus.PAUSED
        job.thread = await self.memory.update_thread(rec)
        error = CrewReported(reason)
        error.kind = kind
        raise error


def crew_installed() -> bool:
    """Whether crewai can be imported, without importing it (seconds)."""
    try:
        return importlib.util.find_spec("crewai") is not None
    except (ImportError, ValueError):
        return False


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 and s % 60 else (f"{s // 60}m" if s >= 60 else f"{seconds:g}s")
