"""Crews end to end through the engine: real crewai against the local OpenAI-compatible server
(no key, no internet), real SQLite, the fake outbox. The durability tests give the engine a small
fake of our own `CrewRunner` port where they need a crew that never ends."""

import asyncio
import itertools

import pytest

from engine.crews.runner import CrewModel, CrewOutcome, Progress
from engine.engine import Engine, EngineConfig
from engine.memory import SQLiteMemory
from engine.memory.records import TaskStatus, ThreadKind, ThreadStatus
from engine.models import ReplyKind, Task, TaskKind
from engine.personas import PersonaRegistry
from engine.providers import OfflineProvider, OpenAIProvider
from tests.fakes import Crash, FakeOutbox
from tests.servers import Scripted
from tests.servers.openai_server import (
    act_like_crew_model,
    agent_role,
    completion,
    error,
)

pytest_plugins = ["tests.servers.fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # crewai's own, about its own API

KEY = "sk-local-test"
_ids = itertools.count(1)


def crew_task(text="", *, channel="C1", thread=None, **kw) -> Task:
    n = next(_ids)
    return Task(platform="test", workspace="W1", channel=channel, thread=thread, user="U1", text=text,
                event_id=f"crew{n}", kind=TaskKind.CREW, message_id=f"ts{n}", **kw)


@pytest.fixture
async def memory(tmp_path):
    mem = await SQLiteMemory.open(tmp_path / "orchestra.db")
    yield mem
    await mem.close()


def model_for(server=None, **kw) -> CrewModel:
    kw.setdefault("progress_interval", 0)
    if server is None:
        return CrewModel(**kw)
    return CrewModel(provider="openai", model="gpt-test", api_key=KEY, base_url=server.base_url, timeout=5, **kw)


async def make(memory, server=None, *, runner=None, shown=None, **kw) -> tuple[Engine, FakeOutbox]:
    provider = OpenAIProvider(KEY, server.base_url, "gpt-test", timeout=5, max_retries=0) if server else OfflineProvider()
    engine = Engine(memory, provider, PersonaRegistry.defaults(), EngineConfig(), crews=model_for(server, **kw),
                    crew_runner=runner)
    outbox = FakeOutbox(shown=shown)
    engine.register_outbox("test", outbox)
    await engine.start()
    return engine, outbox


def modes(outbox) -> list[str]:
    return [r.mode or r.kind.value for r in outbox.posts]


async def persona_turns(memory, rec_id):
    return {t.mode: t for t in await memory.turns(rec_id) if t.role.value == "persona"}


# --- the team for each complexity and domain, through real crewai --------------------------------


@pytest.mark.parametrize(("text", "options", "lead", "roles"), [
    ("why did churn rise in Q3", {"domain": "research", "complexity": "low"}, "sophia",
     ["Specialist researcher"]),
    ("grow the Q3 pipeline", {"domain": "sales", "complexity": "medium"}, "karen",
     ["Mid-level sales strategist", "Senior sales strategist"]),
    ("plan the launch", {"domain": "project", "complexity": "high"}, "karen",
     ["Expert project manager", "Mid-level content writer (content support)", "Senior project manager"]),
    ("how should we roadmap next year", {"complexity": "high"}, "cherry",
     ["Expert generalist", "Mid-level researcher (research support)", "Senior generalist"]),
])
async def test_a_crew_runs_its_team_reviews_plan_and_result_and_remembers_them(memory, openai_server, text, options,
                                                                                 lead, roles):
    asked = act_like_crew_model(openai_server, {roles[-1]: "Raise EMEA prices, then hire two reps."},
                                review="Right people, right order.\nVerdict: go")
    engine, outbox = await make(memory, openai_server)
    rec = await engine.run(crew_task(text, options=options))

    assert rec.kind == ThreadKind.CREW and rec.status == ThreadStatus.COMPLETE and rec.lead == lead
    assert asked == roles  # each agent did its own task, in order, against the configured model
    progress = [r for r in outbox.posts if r.mode == "crew-progress"]
    assert [(p.content["agent"], p.content["status"]) for p in progress] == [
        (role, status) for role in roles for status in ("started", "done")]
    assert modes(outbox) == ["root", "crew-plan", *["crew-progress"] * (2 * len(roles)), "crew-result", "crew-review"]
    assert all(r.voice.name == lead for r in outbox.posts)  # the orchestrator speaks throughout
    assert all(r.thread == rec.thread for r in outbox.posts[1:])
    plan = next(r for r in outbox.posts if r.mode == "crew-plan")
    assert plan.content["review"].startswith("Right people")
    assert {a["role"] for a in plan.content["agents"]} == set(roles) and len(plan.content["tasks"]) == len(roles)

    stored = await persona_turns(memory, rec.id)
    assert stored["crew-plan"].findings["verdict"] == "go"
    assert stored["crew-result"].findings["result"] == "Raise EMEA prices, then hire two reps."
    usage = stored["crew-result"].findings["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert stored["crew-result"].input_tokens == usage["prompt_tokens"]
    assert stored["crew-review"].findings == {"review": "Right people, right order.\nVerdict: go", "verdict": "go"}
    # recalled later like any finding: a conversation in the same channel finds the result
    found = await memory.recall("test", "W1", "C1", "EMEA prices reps", limit=5)
    assert any(r.thread_id == rec.id and "EMEA prices" in r.text for r in found)


async def test_agents_get_the_channels_real_tools(memory, openai_server):
    act_like_crew_model(openai_server)
    engine, _ = await make(memory, openai_server)
    await engine.run(crew_task("grow the Q3 pipeline", options={"domain": "sales", "complexity": "low"}))
    agent_calls = [b for b in openai_server.bodies if agent_role(b)]
    names = {t["function"]["name"] for t in agent_calls[0]["tools"]}
    assert names == {"channel_memory", "thread_history"}


async def test_offline_runs_a_marked_rehearsal_without_any_network(memory):
    engine, outbox = await make(memory)  # no server at all: the rehearsal cannot reach one
    rec = await engine.run(crew_task("why did churn rise", options={"domain": "data", "complexity": "medium"}))
    assert rec.status == ThreadStatus.COMPLETE and rec.lead == "sophia"
    result = next(r for r in outbox.posts if r.mode == "crew-result")
    assert result.offline and "Rehearsal" in result.content["result"]
    assert outbox.posts[0].text.startswith("🧪 Offline rehearsal")
    stored = await persona_turns(memory, rec.id)
    assert stored["crew-result"].findings["rehearsal"] is True


# --- bad input ----------------------------------------------------------------------------------


async def test_empty_text_gets_a_usage_hint_and_a_bad_option_a_friendly_answer(memory):
    engine, outbox = await make(memory)
    assert await engine.run(crew_task("")) is None
    assert "/crew sales high" in outbox.posts[-1].text
    assert await engine.run(crew_task("grow it", options={"complexity": "extreme"})) is None
    assert outbox.posts[-1].kind == ReplyKind.NOTICE and "Complexity is one of low, medium, high" in outbox.posts[-1].text
    assert not await memory.list_threads("test", "W1", "C1")


# --- failure and timeout ------------------------------------------------------------------------


async def test_a_failing_model_is_reported_in_the_orchestrators_voice_and_the_task_is_kept(memory, openai_server):
    def answer(body):
        if agent_role(body):
            return error(401, "Incorrect API key provided", type="invalid_request_error", code="invalid_api_key")
        return Scripted(body=completion("Looks fine.\nVerdict: go"))

    openai_server.always(answer)
    engine, outbox = await make(memory, openai_server)
    rec = await engine.run(crew_task("grow the Q3 pipeline", options={"domain": "sales", "complexity": "low"}))
    failed = outbox.posts[-1]
    assert failed.kind == ReplyKind.ERROR and failed.voice.name == "karen"
    assert failed.text.startswith("Karen here: the crew didn't finish.")
    assert "Traceback" not in failed.text and "127.0.0.1" not in failed.text and KEY not in failed.text
    assert rec.status == ThreadStatus.PAUSED
    stored = await memory.get_task(1)
    assert stored.status == TaskStatus.FAILED and stored.task.text == "grow the Q3 pipeline"
    assert [r.kind for r in outbox.posts].count(ReplyKind.ERROR) == 1  # told once, by the crew


async def test_a_crew_past_its_time_limit_is_reported_and_stops_being_waited_for(memory, openai_server):
    act_like_crew_model(openai_server, delay=2.0)
    engine, outbox = await make(memory, openai_server, crew_timeout=0.3)
    rec = await engine.run(crew_task("grow the Q3 pipeline", options={"domain": "sales", "complexity": "low"}))
    failed = outbox.posts[-1]
    assert failed.kind == ReplyKind.ERROR and failed.voice.name == "karen"
    assert "time limit (0.3s)" in failed.text and "ORCHESTRA_CREW_TIMEOUT" in failed.text
    assert rec.status == ThreadStatus.PAUSED
    assert (await memory.get_task(1)).status == TaskStatus.FAILED
    assert "crew-result" not in modes(outbox)


# --- concurrency --------------------------------------------------------------------------------


async def test_two_crews_run_at_once_and_a_conversation_elsewhere_still_answers(memory, openai_server):
    act_like_crew_model(openai_server, delay=0.4)  # every agent call takes a while; reviews do not
    engine, outbox = await make(memory, openai_server)
    await engine.submit(crew_task("grow the Q3 pipeline", options={"domain": "sales", "complexity": "medium"}))
    await engine.submit(crew_task("why did churn rise", channel="C2", options={"domain": "research", "complexity": "medium"}))
    while sum(r.mode == "crew-progress" for r in outbox.posts) < 2:  # both crews are at work
        await asyncio.sleep(0.02)
    await engine.submit(Task(platform="test", workspace="W1", channel="C3", thread="t-talk", user="U2",
                             text="cherry, quick one: what's our standup time?", event_id="talk", message_id="t-talk"))
    await engine.wait_idle()
    kinds = [(r.channel, r.mode or r.kind.value) for r in outbox.posts]
    answer = kinds.index(("C3", "answer"))
    first_result = min(kinds.index(("C1", "crew-result")), kinds.index(("C2", "crew-result")))
    assert answer < first_result  # answered while both crews were still working
    assert kinds.count(("C1", "crew-review")) == kinds.count(("C2", "crew-review")) == 1


# --- durability: dedupe, restart ----------------------------------------------------------------


class HangingRunner:
    """A crew that never finishes (as when the process dies mid-crew)."""

    def __init__(self):
        self.calls = 0
        self.started = asyncio.Event()

    async def run(self, plan, tools, on_progress):
        self.calls += 1
        self.started.set()
        await asyncio.Event().wait()


class QuickRunner:
    def __init__(self):
        self.calls = 0

    async def run(self, plan, tools, on_progress):
        self.calls += 1
        for i, t in enumerate(plan.tasks):
            on_progress(Progress(t.agent, t.title, "started", i))
            on_progress(Progress(t.agent, t.title, "done", i))
        return CrewOutcome(result="All done.", usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})


async def test_the_same_event_twice_runs_one_crew(memory):
    runner = QuickRunner()
    engine, outbox = await make(memory, runner=runner)
    task = crew_task("grow the Q3 pipeline", options={"domain": "sales", "complexity": "low"})
    assert not (await engine.submit(task)).duplicate
    assert (await engine.submit(task)).duplicate
    await engine.wait_idle()
    assert runner.calls == 1 and modes(outbox).count("crew-result") == 1


async def test_a_restart_mid_crew_reports_it_and_never_runs_it_twice(memory):
    hanging = HangingRunner()
    engine, outbox = await make(memory, runner=hanging)
    await engine.submit(crew_task("grow the Q3 pipeline", options={"domain": "sales", "complexity": "medium"}))
    await hanging.started.wait()
    await engine.stop(grace=0)  # the process goes away while the crew works
    assert (await memory.get_task(1)).status in (TaskStatus.ACCEPTED, TaskStatus.RUNNING)

    again = QuickRunner()
    engine2, outbox2 = await make(memory, runner=again, shown=outbox.shown)
    await engine2.wait_idle()
    assert again.calls == 0  # never a second run for one request
    assert [r.kind for r in outbox2.posts] == [ReplyKind.ERROR]  # nothing before it posted twice
    assert outbox2.posts[0].voice.name == "karen" and "restarted while the crew was working" in outbox2.posts[0].text
    assert (await memory.get_task(1)).status == TaskStatus.FAILED
    keys = [m["key"] for m in outbox.shown.values() if m["key"]]
    assert len(keys) == len(set(keys))


async def test_a_restart_before_the_crew_started_resumes_it_once_without_reposting(memory):
    runner = QuickRunner()
    engine, outbox = await make(memory, runner=runner)
    outbox.crash_after = lambda reply: reply.mode == "crew-plan"  # dies right after the plan review
    await engine.submit(crew_task("grow the Q3 pipeline", options={"domain": "sales", "complexity": "low"}))
    with pytest.raises(Crash):
        await asyncio.gather(*engine._jobs)
    assert runner.calls == 0

    again = QuickRunner()
    engine2, outbox2 = await make(memory, runner=again, shown=outbox.shown)
    await engine2.wait_idle()
    assert again.calls == 1
    assert modes(outbox2) == ["crew-progress", "crew-progress", "crew-result", "crew-review"]  # the plan is not repeated
    rec = (await memory.list_threads("test", "W1", "C1"))[0]
    assert rec.status == ThreadStatus.COMPLETE


# --- the planner hand-off -----------------------------------------------------------------------


async def test_a_planner_turn_offers_the_hand_off_and_the_crew_works_from_the_plan(memory):
    runner = QuickRunner()
    engine, outbox = await make(memory, runner=runner)
    inv = await engine.run(Task(platform="test", workspace="W1", channel="C1", user="U1", event_id="inv",
                                text="intermittent 401s on checkout after the Tuesday deploy", kind=TaskKind.INVESTIGATE,
                                message_id="inv"))
    planner = [r for r in outbox.posts if r.mode == "planner"][-1]
    assert [a.kind for a in planner.actions][-1] == TaskKind.CREW
    assert planner.actions[-1].investigation_id == inv.id

    before = len(outbox.posts)
    click = crew_task("", thread=inv.thread)
    crew = await engine.run(click)
    await engine.submit(click)  # a double click does nothing twice
    await engine.wait_idle()
    posts = outbox.posts[before:]
    assert runner.calls == 1
    assert [r.mode for r in posts] == ["crew-plan", *["crew-progress"] * 4, "crew-result", "crew-review"]  # medium: two agents
    assert all(r.thread == inv.thread and r.voice.name == inv.lead for r in posts)  # in the investigation's thread
    assert crew.kind == ThreadKind.CREW and crew.lead == inv.lead and "401s on checkout" in crew.title
    plan = await persona_turns(memory, crew.id)
    assert "Carry out the plan of investigation" in plan["crew-plan"].findings["plan"]["work"]
    # a reply in that thread still goes to the investigation, not to the crew
    assert (await memory.find_thread("test", "W1", "C1", inv.thread)).id == inv.id


async def test_a_hand_off_without_a_plan_says_what_to_do(memory):
    engine, outbox = await make(memory, runner=QuickRunner())
    inv = await engine.run(Task(platform="test", workspace="W1", channel="C1", user="U1", event_id="inv2",
                                text="why?", kind=TaskKind.INVESTIGATE, message_id="inv2"))
    await engine.run(crew_task("", thread=inv.thread))
    assert outbox.posts[-1].kind == ReplyKind.NOTICE and "no plan yet" in outbox.posts[-1].text


class SteadyRunner(QuickRunner):
    """Reports progress over time, as a real crew does."""

    async def run(self, plan, tools, on_progress):
        self.calls += 1
        for i, t in enumerate(plan.tasks):
            on_progress(Progress(t.agent, t.title, "started", i))
            await asyncio.sleep(0.02)
            on_progress(Progress(t.agent, t.title, "done", i))
        return CrewOutcome(result="Paced and done.")


async def test_progress_is_paced_in_order_and_nothing_is_dropped(memory):
    engine, outbox = await make(memory, runner=SteadyRunner(), progress_interval=0.05)
    await engine.run(crew_task("plan the launch", options={"domain": "project", "complexity": "high"}))
    progress = [(r.content["task"], r.content["status"]) for r in outbox.posts if r.mode == "crew-progress"]
    titles = ["Analyse the work in depth from the project side", "Add the content perspective", "Synthesise the final result"]
    assert progress == [(t, s) for t in titles for s in ("started", "done")]
    assert modes(outbox)[-2:] == ["crew-result", "crew-review"]  # the result comes after all progress


async def test_an_agent_calling_the_channel_memory_tool_reads_what_the_channel_remembers(memory, openai_server):
    act_like_crew_model(openai_server, {"Specialist sales strategist": "EMEA pricing doubled churn last spring."})
    engine, _ = await make(memory, openai_server)
    await engine.run(crew_task("why did churn rise", options={"domain": "sales", "complexity": "low"}))

    def answer(body):
        if not agent_role(body):
            return Scripted(body=completion("Fine.\nVerdict: go"))
        if not any(m.get("role") == "tool" for m in body["messages"]):  # first: look it up
            call = {"id": "call_1", "type": "function",
                    "function": {"name": "channel_memory", "arguments": '{"query": "EMEA pricing churn"}'}}
            reply = completion(None, finish_reason="tool_calls")
            reply["choices"][0]["message"]["tool_calls"] = [call]
            return Scripted(body=reply)
        return Scripted(body=completion("Going by what we learned before: revisit EMEA pricing."))

    openai_server.always(answer)
    rec = await engine.run(crew_task("plan the Q4 pricing", options={"domain": "sales", "complexity": "low"}))
    tool_results = [m["content"] for b in openai_server.bodies if isinstance(b, dict)
                    for m in b.get("messages", []) if m.get("role") == "tool"]
    assert tool_results and "EMEA pricing doubled churn" in tool_results[0]  # the real recall, from the loop
    assert (await persona_turns(memory, rec.id))["crew-result"].findings["result"].startswith("Going by what we learned")


async def test_a_resumed_crew_runs_the_plan_it_reviewed_even_if_the_personas_changed(memory):
    runner = QuickRunner()
    engine, outbox = await make(memory, runner=runner)
    outbox.crash_after = lambda reply: reply.mode == "crew-plan"
    await engine.submit(crew_task("grow the Q3 pipeline", options={"domain": "sales", "complexity": "medium"}))
    with pytest.raises(Crash):
        await asyncio.gather(*engine._jobs)
    reviewed = [a["role"] for a in next(r for r in outbox.posts if r.mode == "crew-plan").content["agents"]]

    class Recording(QuickRunner):
        async def run(self, plan, tools, on_progress):
            self.plan = plan
            return await super().run(plan, tools, on_progress)

    again = Recording()
    personas = PersonaRegistry.defaults()
    karen = personas["karen"]
    changed = karen.model_copy(update={"role": "Chief of Staff"})
    engine2 = Engine(memory, OfflineProvider(), type(personas)([changed if p.name == "karen" else p for p in personas]),
                     EngineConfig(), crews=model_for(), crew_runner=again)
    engine2.register_outbox("test", FakeOutbox(shown=outbox.shown))
    await engine2.start()
    await engine2.wait_idle()
    assert [a.role for a in again.plan.agents] == reviewed
    assert "Chief of Staff" not in again.plan.agents[0].backstory  # the stored plan, not a new one
