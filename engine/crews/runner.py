"""Running a crew: the `CrewRunner` port and its CrewAI implementation.

crewai is imported here only when a crew runs (it takes seconds), with its telemetry and tracing
turned off before the import. Its work is blocking, so it runs in a thread of its own; progress
callbacks come back to the event loop with `call_soon_threadsafe`, so conversations elsewhere
keep answering while a crew works.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from engine.crews.team import CrewPlan
from engine.crews.tools import ToolSpec

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'orchestra-personas[crew]'"
_QUIET = {"CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true", "CREWAI_TRACING_ENABLED": "false"}


@dataclass(frozen=True)
class CrewModel:
    """The model crews use: the personas' settings, handed over by the composition root."""

    provider: str = "offline"  # anthropic, openai (also OpenAI-compatible servers), offline
    model: str = "offline"
    api_key: str | None = None
    base_url: str | None = None
    timeout: float = 60.0  # one model call
    crew_timeout: float = 600.0  # the whole crew (ORCHESTRA_CREW_TIMEOUT)
    progress_interval: float = 1.0  # at least this long between two progress posts

    @property
    def offline(self) -> bool:
        return self.provider == "offline"


@dataclass(frozen=True)
class Progress:
    agent: str  # role
    task: str  # the task's first line
    status: str  # started | done
    index: int  # the task's position, from 0


@dataclass
class CrewOutcome:
    result: str
    outputs: list[dict[str, str]] = field(default_factory=list)  # per task: agent, task, output
    usage: dict[str, int] = field(default_factory=dict)


class CrewNotInstalled(Exception):
    """crewai is missing: the answer names the install command."""


class CrewFailed(Exception):
    """The crew stopped with an error; `reason` is safe to show (details are in the log)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CrewRunner(Protocol):
    async def run(self, plan: CrewPlan, tools: list[ToolSpec], on_progress: Callable[[Progress], None]) -> CrewOutcome:
        """Run the crew; raise CrewNotInstalled or CrewFailed. Cancelling stops waiting for it."""
        ...


def import_crewai():
    """crewai, imported with its telemetry off; CrewNotInstalled when the extra is missing."""
    for key, value in _QUIET.items():
        os.environ.setdefault(key, value)
    # crewai's own chatter (approximate token counts, checkpointing hints) is not for people
    logging.getLogger("crewai").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*cannot be serialized.*")
    try:
        import crewai
    except ImportError as e:
        log.info("crewai is not installed: %s", e)
        raise CrewNotInstalled(INSTALL_HINT) from None
    return crewai


def build_llm(model: CrewModel):
    """crewai's LLM for the configured model, or the rehearsal one that never leaves the process."""
    crewai = import_crewai()
    if model.offline:
        from engine.crews.rehearsal import rehearsal_llm

        return rehearsal_llm()
    prefix = "anthropic" if model.provider == "anthropic" else "openai"
    name = model.model if "/" in model.model else f"{prefix}/{model.model}"
    return crewai.LLM(model=name, base_url=model.base_url, api_key=model.api_key or "not-needed",
                      timeout=model.timeout, max_retries=1)


class CrewAIRunner:
    """The crew on crewai: sequential tasks, each by its agent, off the event loop."""

    def __init__(self, model: CrewModel):
        self.model = model

    async def run(self, plan: CrewPlan, tools: list[ToolSpec], on_progress: Callable[[Progress], None]) -> CrewOutcome:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[CrewOutcome] = loop.create_future()

        def back(call, *args) -> None:  # from crewai's thread to the loop (gone if we stopped waiting)
            try:
                loop.call_soon_threadsafe(call, *args)
            except RuntimeError:
                pass

        def settle(outcome: CrewOutcome | None, error: BaseException | None) -> None:
            if done.done():
                return  # timed out or cancelled: nobody waits for it any more
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(outcome)

        def work() -> None:
            try:
                outcome = self._kickoff(plan, tools, lambda p: back(on_progress, p))
            except BaseException as e:  # noqa: BLE001 - handed to the loop, which decides
                back(settle, None, e)
            else:
                back(settle, outcome, None)

        # A daemon thread of its own, not the loop's executor: a crew past its time limit keeps
        # working until its model answers, and must not keep the process from exiting.
        threading.Thread(target=work, name="crew", daemon=True).start()
        try:
            return await done
        except (CrewNotInstalled, CrewFailed):
            raise
        except Exception as e:
            log.warning("crew failed", exc_info=True)
            raise CrewFailed(_reason(e)) from None

    def _kickoff(self, plan: CrewPlan, tools: list[ToolSpec], report: Callable[[Progress], None]) -> CrewOutcome:
        crewai = import_crewai()
        from engine.crews.tools import crewai_tools

        llm = build_llm(self.model)
        agent_tools = crewai_tools(tools)
        agents = {
            a.role: crewai.Agent(role=a.role, goal=a.goal, backstory=a.backstory, llm=llm, tools=list(agent_tools),
                                 verbose=False, allow_delegation=False, max_iter=6)
            for a in plan.agents
        }
        firsts = [t.title for t in plan.tasks]
        done = iter(range(len(plan.tasks)))

        def finished(_output) -> None:
            i = next(done)
            report(Progress(plan.tasks[i].agent, firsts[i], "done", i))
            if i + 1 < len(plan.tasks):
                report(Progress(plan.tasks[i + 1].agent, firsts[i + 1], "started", i + 1))

        tasks = [crewai.Task(description=t.description, expected_output=t.expected_output, agent=agents[t.agent])
                 for t in plan.tasks]
        crew = crewai.Crew(agents=list(agents.values()), tasks=tasks, process=crewai.Process.sequential,
                           verbose=False, task_callback=finished)
        report(Progress(plan.tasks[0].agent, firsts[0], "started", 0))
        out = crew.kickoff()
        usage = out.token_usage
        return CrewOutcome(
            result=final_answer(out.raw),
            outputs=[{"agent": t.agent, "task": firsts[i], "output": final_answer(o.raw)}
                     for i, (t, o) in enumerate(zip(plan.tasks, out.tasks_output))],
            usage={"prompt_tokens": int(usage.prompt_tokens or 0), "completion_tokens": int(usage.completion_tokens or 0),
                   "total_tokens": int(usage.total_tokens or 0), "requests": int(usage.successful_requests or 0)},
        )


def final_answer(raw: object) -> str:
    """The answer without a ReAct preamble a model may leave in it ("Thought: … Final Answer: …")."""
    text = str(raw or "").strip()
    _, found, answer = text.rpartition("Final Answer:")
    return answer.strip() if found else text


def _reason(e: Exception) -> str:
    text = f"{e.__class__.__name__} {e}".lower()
    if "timeout" in text or "timed out" in text:
        return "The model took too long to answer the crew."
    if "rate" in text and "limit" in text:
        return "The model is rate-limiting us right now."
    if "auth" in text or "api key" in text or "401" in text:
        return "The model refused our credentials; check the API key."
    if "connect" in text:
        return "The model could not be reached."
    return "The crew stopped on an error from the model or crewai."
