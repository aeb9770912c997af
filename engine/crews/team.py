"""Who works on a crew: the orchestrator, the agents and their tasks. Pure: no crewai, no I/O.

The orchestrator follows the domain (sales, marketing, project → Karen; research, data,
content → Sophia; otherwise the default persona, Cherry), unless a persona was named. The team
follows the complexity:

    low     one specialist
    medium  a senior lead and a mid-level support
    high    a lead, a domain expert, and a support from the complementary domain

Every agent's role, goal and backstory carry the orchestrator's traits (OCEAN, humour,
formality) and her influence, so a crew Karen assembles works like Karen would.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from engine.crews.request import DOMAINS, CrewRequest
from engine.personas import Persona, PersonaRegistry
from engine.personas.model import describe_style, describe_traits

#: Where a high-complexity crew borrows its support from.
COMPLEMENT = {
    "sales": "marketing",
    "marketing": "sales",
    "research": "data",
    "data": "research",
    "content": "research",
    "project": "content",
    "general": "research",
}

#: What a specialist of each domain is called.
TITLES = {
    "sales": "sales strategist",
    "marketing": "marketing strategist",
    "project": "project manager",
    "research": "researcher",
    "data": "data analyst",
    "content": "content writer",
    "general": "generalist",
}

#: The tools every agent gets (see engine.crews.tools): names of real tools, nothing invented.
TOOLS = ("channel_memory", "thread_history")


class AgentSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: str
    seniority: str  # specialist, senior, expert, mid-level
    domain: str
    goal: str
    backstory: str
    tools: tuple[str, ...] = TOOLS


class TaskSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent: str  # the role of the agent that does it
    title: str  # one line, for progress posts and the plan
    description: str
    expected_output: str


class CrewPlan(BaseModel):
    """The crew as the orchestrator assembled it; stored with the plan review, and what the
    runner turns into crewai objects."""

    model_config = ConfigDict(frozen=True)

    work: str
    orchestrator: str  # persona name
    domain: str
    complexity: str
    agents: list[AgentSpec]
    tasks: list[TaskSpec]

    def text(self) -> str:
        """The plan for people and for the orchestrator's review."""
        team = "\n".join(f"• {a.role} ({a.seniority}, {a.domain})" for a in self.agents)
        steps = "\n".join(f"{i}. {t.agent}: {t.title}" for i, t in enumerate(self.tasks, 1))
        return f"Team ({self.complexity} complexity, {self.domain}):\n{team}\nTasks:\n{steps}"


def infer_domain(text: str) -> str:
    """The first crew domain the text names (as a word prefix: "projects" counts), else general."""
    lowered = (text or "").lower()
    hits = [(m.start(), d) for d in DOMAINS if d != "general" for m in [re.search(rf"\b{d}", lowered)] if m]
    return min(hits)[1] if hits else "general"


def orchestrator_for(personas: PersonaRegistry, domain: str, named: Persona | None) -> Persona:
    """The named persona, or the one whose domains hold the crew's domain (the default for general)."""
    if named is not None:
        return named
    if domain == "general":
        return personas[personas.default]
    return personas[personas.route_by_domain(domain).persona]


def _influence(p: Persona) -> str:
    return (f"You were recruited by {p.display_name} ({p.role}), who orchestrates this crew and reviews its work. "
            f"Work the way she would: {describe_traits(p.traits)} {describe_style(p.humor, p.formality)}")


def _agent(p: Persona, seniority: str, domain: str, duty: str, work: str) -> AgentSpec:
    title = TITLES.get(domain, "specialist")
    role = f"{seniority.capitalize()} {title}"
    return AgentSpec(
        role=role, seniority=seniority, domain=domain,
        goal=f"{duty} for: {work[:300]}",
        backstory=(f"A {seniority} {title} with years of {domain} work behind you. "
                   f"{_influence(p)} Use the channel's memory and the thread's history when they help; "
                   "say plainly what you do not know."),
    )


def assemble(request: CrewRequest, personas: PersonaRegistry, named: Persona | None = None,
             domain: str | None = None) -> CrewPlan:
    """The crew for this request (`domain` overrides the request's, e.g. an investigation's)."""
    domain = domain or request.domain or infer_domain(request.text)
    lead = orchestrator_for(personas, domain, named)
    work = request.text
    if request.complexity == "low":
        agents = [_agent(lead, "specialist", domain, "Deliver a complete, practical answer", work)]
        tasks = [TaskSpec(agent=agents[0].role, title="Do the work and deliver the result", description=f"Do this work and deliver the result:\n{work}",
                          expected_output="A complete, practical answer with concrete next steps.")]
    elif request.complexity == "medium":
        agents = [_agent(lead, "senior", domain, "Lead the work and deliver the final answer", work),
                  _agent(lead, "mid-level", domain, "Gather the facts and draft the groundwork", work)]
        tasks = [
            TaskSpec(agent=agents[1].role, title="Gather the facts and draft the groundwork", description=f"Gather the relevant facts and draft the groundwork for:\n{work}",
                     expected_output="The facts that matter and a first draft, with open questions marked."),
            TaskSpec(agent=agents[0].role, title="Review the draft and deliver the final result", description=f"Review the draft and deliver the final result for:\n{work}",
                     expected_output="The final result: clear, complete, with concrete next steps."),
        ]
    else:
        other = COMPLEMENT.get(domain, "research")
        agents = [_agent(lead, "senior", domain, "Lead the crew and synthesise the final answer", work),
                  _agent(lead, "expert", domain, f"Bring deep {domain} expertise", work),
                  _agent(lead, "mid-level", other, f"Add the {other} perspective", work)]
        agents[2] = agents[2].model_copy(update={"role": f"Mid-level {TITLES.get(other, 'specialist')} ({other} support)"})
        tasks = [
            TaskSpec(agent=agents[1].role, title=f"Analyse the work in depth from the {domain} side", description=f"Analyse this in depth from the {domain} side:\n{work}",
                     expected_output=f"A {domain} analysis: findings, risks, options."),
            TaskSpec(agent=agents[2].role, title=f"Add the {other} perspective", description=f"Add what the {other} side sees, building on the analysis:\n{work}",
                     expected_output=f"The {other} perspective: what it changes, what it adds."),
            TaskSpec(agent=agents[0].role, title="Synthesise the final result", description=f"Synthesise the team's work into the final result for:\n{work}",
                     expected_output="The final result: a clear recommendation and a step-by-step plan."),
        ]
    return CrewPlan(work=work, orchestrator=lead.name, domain=domain, complexity=request.complexity,
                    agents=agents, tasks=tasks)
