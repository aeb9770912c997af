"""The engine end to end: real SQLite, fake outbox and scripted models."""

import asyncio
import itertools
import json

import pytest

from engine.engine import Engine, EngineConfig
from engine.memory import SQLiteMemory
from engine.memory.records import Phase, TaskStatus, ThreadStatus, TurnRole
from engine.models import ReplyKind, Task, TaskKind
from engine.personas import PersonaRegistry
from engine.ports import ModelResponse, ProviderRateLimited, ProviderTimeout
from tests.fakes import Crash, FakeOutbox, ScriptedProvider, by_mode, critique, plan, research

_ids = itertools.count(1)


def task(text="", *, kind=TaskKind.MESSAGE, channel="C1", thread=None, event_id=None, platform="test", **kw) -> Task:
    n = next(_ids)
    event_id = event_id or f"e{n}"
    if kind == TaskKind.MESSAGE and thread is None:
        thread = f"ts{n}"  # a new mention opens a thread under itself, as in Slack
    return Task(platform=platform, workspace="W1", channel=channel, thread=thread, user="U1", text=text,
                event_id=event_id, kind=kind, message_id=f"ts{n}", **kw)


@pytest.fixture
async def memory(tmp_path):
    mem = await SQLiteMemory.open(tmp_path / "orchestra.db")
    yield mem
    await mem.close()


async def make(memory, provider, **config) -> tuple[Engine, FakeOutbox]:
    engine = Engine(memory, provider, PersonaRegistry.defaults(), EngineConfig(**config))
    outbox = FakeOutbox()
    engine.register_outbox("test", outbox)
    await engine.start()
    return engine, outbox


async def investigate(engine, text, **kw):
    rec = await engine.run(task(text, kind=TaskKind.INVESTIGATE, **kw))
    return rec


# --- conversations ------------------------------------------------------------------------------


async def test_named_persona_answers_in_the_thread_and_follow_ups_continue(memory):
    provider = ScriptedProvider("Signups fell after the pricing change.", "Mostly in the EU.")
    engine, outbox = await make(memory, provider)
    first = task("Sophia, why did signups drop?")
    await engine.submit(first)
    await engine.wait_idle()
    assert [r.kind for r in outbox.posts] == [ReplyKind.ANSWER]
    answer = outbox.posts[0]
    assert answer.voice.display_name == "Sophia" and answer.thread == first.thread
    assert "Signups fell" in answer.text and "You are Sophia" in provider.requests[0].system
    assert provider.requests[0].messages[-1].content == "why did signups drop?"

    await engine.submit(task("where?", thread=first.thread))
    await engine.wait_idle()
    assert outbox.posts[1].voice.name == "sophia" and outbox.posts[1].thread == first.thread
    history = [m.content for m in provider.requests[1].messages]
    assert history[0] == "Sophia, why did signups drop?" and "Signups fell" in history[1]
    assert history[-1] == "where?"


@pytest.mark.parametrize("text, persona", [("how do we grow sales in Q3?", "karen"), ("analyse this survey data", "sophia"), ("what next?", "cherry")])
async def test_domain_router_chooses_when_nobody_is_named(memory, text, persona):
    engine, outbox = await make(memory, ScriptedProvider(fallback=by_mode))
    rec = await engine.run(task(text))
    assert outbox.posts[-1].voice.name == persona
    [turn] = [t for t in await memory.turns(rec.id) if t.role == TurnRole.PERSONA]
    assert turn.route["persona"] == persona
    assert ("domain words" if persona != "cherry" else "no domain words") in turn.route["reasons"][0]


async def test_a_reply_to_a_personas_message_goes_to_her(memory):
    engine, outbox = await make(memory, ScriptedProvider(fallback=by_mode))
    first = task("karen, any ideas for the launch?")
    await engine.run(first)
    posted_id = await memory.post_for_key(outbox.posts[0].key)
    await engine.run(task("tell me more", thread=first.thread, reply_to=posted_id))
    assert outbox.posts[-1].voice.name == "karen"


async def test_bad_input_gets_a_friendly_answer(memory):
    provider = ScriptedProvider(fallback=by_mode)
    engine, outbox = await make(memory, provider)
    await engine.run(task("   "))
    assert outbox.posts[-1].kind == ReplyKind.NOTICE and "Ask me something" in outbox.posts[-1].text
    assert provider.requests == []

    await engine.run(task("@bob what is our churn?"))
    unknown, answer = outbox.posts[-2:]
    assert "don't know a persona called “bob”" in unknown.text and answer.kind == ReplyKind.ANSWER

    huge = "ünïcødé 🚀 " * 4000  # 40,000 characters
    t = task("sophia, " + huge)
    await engine.run(t)
    clipped, answer = outbox.posts[-2:]
    assert "40,008 characters" in clipped.text and "first 12,000" in clipped.text and answer.kind == ReplyKind.ANSWER
    assert len(provider.requests[-1].messages[-1].content) < 13_000
    stored = await memory.get_task((await memory.accept_task(t)).task_id)
    assert stored.task.text == t.text  # nothing lost


async def test_duplicate_event_is_answered_once(memory):
    engine, outbox = await make(memory, ScriptedProvider(fallback=by_mode))
    t = task("sophia, hello")
    a, b = await asyncio.gather(engine.submit(t), engine.submit(t))
    await engine.wait_idle()
    assert sorted([a.duplicate, b.duplicate]) == [False, True]
    assert len(outbox.posts) == 1


async def test_channel_memory_is_recalled_in_the_same_channel_only(memory):
    provider = ScriptedProvider(fallback=by_mode)
    engine, outbox = await make(memory, provider)
    await investigate(engine, "intermittent 401s on checkout", channel="payments")
    await engine.run(task("sophia, are the checkout 401s back?", channel="payments"))
    assert "intermittent 401s on checkout" in provider.requests[-1].system
    await engine.run(task("sophia, are the checkout 401s back?", channel="marketing"))
    assert "intermittent 401s" not in provider.requests[-1].system


# --- investigations -----------------------------------------------------------------------------


async def test_investigation_runs_research_critique_plan_to_completion(memory):
    provider = ScriptedProvider(fallback=by_mode)
    engine, outbox = await make(memory, provider)
    rec = await investigate(engine, "intermittent 401s on checkout")
    assert rec.status == ThreadStatus.COMPLETE and rec.phase == Phase.COMPLETE
    root = outbox.posts[0]
    assert root.kind == ReplyKind.ROOT and root.thread is None
    assert "researcher Sophia, critic Karen, planner Cherry" in root.text
    turns = outbox.turns()
    assert [(r.voice.name, r.mode) for r in turns] == [("sophia", "researcher"), ("karen", "critic"), ("cherry", "planner")]
    assert all(r.thread == rec.thread == "m1" for r in outbox.posts[1:])
    assert turns[0].actions and [a.kind for a in turns[-1].actions] == [TaskKind.CREW]  # complete: only the crew hand-off
    assert outbox.posts[-1].kind == ReplyKind.NOTICE and "complete" in outbox.posts[-1].text
    stored = [t for t in await memory.turns(rec.id) if t.role == TurnRole.PERSONA]
    assert all(t.route["scores"] and t.route["reasons"] for t in stored)
    assert stored[0].confidence == "medium" and stored[0].input_tokens == 10
    assert outbox.working_calls[0] == ("sophia", "C1", "m1")


async def test_named_persona_leads_and_speaks_first(memory):
    engine, outbox = await make(memory, ScriptedProvider(fallback=by_mode))
    rec = await investigate(engine, "karen why are trials not converting")
    assert rec.lead == "karen" and "Lead: Karen" in outbox.posts[0].text
    assert outbox.turns()[0].voice.name == "karen" and outbox.turns()[0].mode == "researcher"
    # Karen is the cast's critic, but she never challenges her own finding: Sophia does
    assert (outbox.turns()[1].voice.name, outbox.turns()[1].mode) == ("sophia", "critic")
    # ... and the root names who really speaks each mode, not the configured cast
    assert "Cast: researcher Karen, critic Sophia, planner Cherry" in outbox.posts[0].text
    stored = [t for t in await memory.turns(rec.id) if t.role == TurnRole.PERSONA]
    assert "Karen wrote the finding under challenge" in stored[1].route["persona_reason"]


@pytest.mark.parametrize("lead", ["sophia", "karen", "cherry"])
async def test_a_critic_never_challenges_her_own_finding(memory, lead):
    """Whoever leads, whatever the cast, and however often the critic speaks."""
    provider = ScriptedProvider(fallback=stuck(research_conf="medium", critic_conf="low"))
    engine, outbox = await make(memory, provider, cast={"researcher": "karen", "critic": "karen", "planner": "karen"})
    rec = await investigate(engine, f"{lead} why are trials not converting")
    rec = await engine.run(task(kind=TaskKind.CHALLENGE, thread=rec.thread))  # and once more, on request
    turns = [t for t in await memory.turns(rec.id) if t.role == TurnRole.PERSONA]
    critics = [i for i, t in enumerate(turns) if t.mode == "critic"]
    assert len(critics) >= 2
    for i in critics:
        challenged = next(t for t in reversed(turns[:i]) if t.mode == "researcher")
        assert turns[i].author != challenged.author


async def test_invalid_finding_is_re_asked_once_with_the_errors(memory):
    bad = {**research(), "evidence": [{"claim": "x", "source": ""}]}
    provider = ScriptedProvider(json.dumps(bad), fallback=by_mode)
    engine, outbox = await make(memory, provider)
    await investigate(engine, "why is the build flaky")
    assert "source" in provider.requests[1].messages[-1].content
    assert provider.requests[1].messages[-2].role == "assistant"
    assert outbox.turns()[0].structured


async def test_twice_invalid_is_posted_marked_unstructured_and_does_not_advance(memory):
    provider = ScriptedProvider("not json at all", '{"summary": "half"}', fallback=by_mode)
    engine, outbox = await make(memory, provider, max_auto_turns=1)
    rec = await investigate(engine, "why is the build flaky")
    first = outbox.turns()[0]
    assert not first.structured and first.content is None
    assert "Unstructured answer" in first.text and '{"summary": "half"}' in first.text
    assert rec.phase == Phase.DISCOVERY and rec.status == ThreadStatus.PAUSED


async def test_stops_and_asks_people_then_resumes_on_their_reply(memory):
    provider = ScriptedProvider(json.dumps(research("low", gaps=[("Which customers see it?", True)])), fallback=by_mode)
    engine, outbox = await make(memory, provider)
    rec = await investigate(engine, "why do some customers see errors")
    assert rec.status == ThreadStatus.WAITING
    assert outbox.posts[-1].kind == ReplyKind.QUESTION and "Which customers see it?" in outbox.posts[-1].text
    rec = await engine.run(task("only enterprise accounts in the EU", thread=rec.thread))
    assert rec.status == ThreadStatus.COMPLETE
    turns = await memory.turns(rec.id)
    assert [t.role for t in turns][:3] == [TurnRole.HUMAN, TurnRole.PERSONA, TurnRole.HUMAN]
    assert "only enterprise accounts" in provider.requests[1].messages[0].content


async def test_automatic_turns_and_total_turns_are_bounded(memory):
    provider = ScriptedProvider(fallback=lambda r: json.dumps(research("low")) if r.schema_name == "researcher" else json.dumps(critique("low")))
    engine, outbox = await make(memory, provider, max_auto_turns=3, max_turns=5)
    rec = await investigate(engine, "something odd")
    assert rec.status == ThreadStatus.PAUSED and rec.turn_count == 3
    assert "pausing" in outbox.posts[-1].text
    rec = await engine.run(task("continue", thread=rec.thread))
    assert rec.turn_count == 5 and rec.status == ThreadStatus.CLOSED
    assert "limit of 5 turns" in outbox.posts[-1].text
    rec = await engine.run(task("more?", thread=rec.thread))
    assert "is closed" in outbox.posts[-1].text


async def test_buttons_challenge_plan_and_close(memory):
    engine, outbox = await make(memory, ScriptedProvider(fallback=by_mode))
    rec = await investigate(engine, "intermittent 401s on checkout")
    rec = await engine.run(task(kind=TaskKind.CHALLENGE, thread=rec.thread))
    assert outbox.turns()[3].mode == "critic" and outbox.turns()[3].voice.name == "karen"
    assert rec.status == ThreadStatus.COMPLETE  # critic → planner → complete again
    rec = await engine.run(task(kind=TaskKind.CLOSE, thread=rec.thread))
    assert rec.status == ThreadStatus.CLOSED and "closed by U1" in outbox.posts[-1].text
    await engine.run(task(kind=TaskKind.PLAN, thread="nowhere"))
    assert "can't find an investigation" in outbox.posts[-1].text


async def test_plan_button_jumps_to_planning(memory):
    provider = ScriptedProvider(json.dumps(research("low", gaps=[("who?", True)])), fallback=by_mode)
    engine, outbox = await make(memory, provider)
    rec = await investigate(engine, "why do some customers see errors")
    rec = await engine.run(task(kind=TaskKind.PLAN, thread=rec.thread))
    assert outbox.turns()[-1].mode == "planner" and rec.status == ThreadStatus.COMPLETE


# --- stuck confidence: no ping-pong ---------------------------------------------------------------


def stuck(research_conf="medium", critic_conf="low", *, gaps=None, plans=True):
    """A model whose confidence never gets anywhere: the critic keeps lowering it, or it stays low."""
    def answer(request):
        if request.schema_name == "researcher":
            return json.dumps(research(research_conf, gaps=gaps))
        if request.schema_name == "critic":
            return json.dumps(critique(critic_conf))
        return json.dumps(plan()) if plans else "no plan"
    return answer


def alternations(modes: list[str]) -> int:
    return sum(1 for a, b in zip(modes, modes[1:]) if {a, b} == {"researcher", "critic"})


STUCK_SCRIPTS = {
    "critic keeps lowering medium": ("medium", "low"),
    "critic keeps lowering high": ("high", "low"),
    "everything stays low": ("low", "low"),
    "everything stays exploring": ("exploring", "exploring"),
    "critic lowers to exploring": ("medium", "exploring"),
}


@pytest.mark.parametrize("question", ["why do some orders fail", "intermittent 401s on checkout"])
@pytest.mark.parametrize("script", list(STUCK_SCRIPTS), ids=list(STUCK_SCRIPTS))
async def test_stuck_confidence_escalates_to_a_plan_with_the_open_checks(memory, script, question):
    r_conf, c_conf = STUCK_SCRIPTS[script]
    provider = ScriptedProvider(fallback=stuck(r_conf, c_conf))
    engine, outbox = await make(memory, provider)  # the defaults: 10 turns, 4 automatic
    rec = await investigate(engine, question)
    modes = [r.mode for r in outbox.turns()]
    assert rec.status == ThreadStatus.COMPLETE, modes  # a plan, without a person having to push
    assert modes[-1] == "planner" and "planner" not in modes[:-1]
    assert alternations(modes) <= 3 and len(modes) <= 4, modes  # r c p, or r c r p at most
    stored = [t for t in await memory.turns(rec.id) if t.role == TurnRole.PERSONA]
    assert any(r.startswith("planner +6: stuck") for r in stored[-1].route["reasons"]), stored[-1].route["reasons"]
    # the plan is asked to start with the checks the critic and the research left open
    context = provider.requests[-1].messages[-1].content
    assert "Checks still open" in context and "- no logs from the gateway" in context and "- which region?" in context
    assert stored[-1].route["open_checks"][:2] == ["no logs from the gateway", "which region?"]


async def test_a_working_model_plans_within_the_default_limits(memory):
    """Plausible findings: a hypothesis, a critique that knocks it down, a second look, ..."""
    per_mode = {
        "researcher": [research("medium"), research("medium", summary="Second look")],
        "critic": [critique("low"), critique("medium")],
        "planner": [plan()],
    }
    provider = ScriptedProvider(fallback=lambda r: json.dumps(per_mode[r.schema_name].pop(0) if len(per_mode[r.schema_name]) > 1 else per_mode[r.schema_name][0]))
    engine, outbox = await make(memory, provider)
    rec = await investigate(engine, "checkout is slow for some customers")
    assert rec.status == ThreadStatus.COMPLETE and rec.turn_count <= 4
    assert [r.mode for r in outbox.turns()][-1] == "planner"


async def test_stuck_with_gaps_only_people_can_fill_asks_them_once_then_plans(memory):
    gaps = [("Which customers see it?", True), ("which region?", False)]
    provider = ScriptedProvider(fallback=stuck("medium", "low", gaps=gaps))
    engine, outbox = await make(memory, provider)
    rec = await investigate(engine, "why do some orders fail")
    assert rec.status == ThreadStatus.WAITING
    question = outbox.posts[-1]
    assert question.kind == ReplyKind.QUESTION and "Which customers see it?" in question.text
    assert "gone round" in question.text
    assert alternations([r.mode for r in outbox.turns()]) <= 2
    stored = [t for t in await memory.turns(rec.id) if t.role == TurnRole.PERSONA]
    assert any("asking the people in the thread" in r for r in stored[-1].route["reasons"])

    rec = await engine.run(task("continue", thread=rec.thread))  # nobody knows: plan with what we have
    assert rec.status == ThreadStatus.COMPLETE and outbox.turns()[-1].mode == "planner"
    assert sum("Which customers see it?" in p.text for p in outbox.posts if p.kind == ReplyKind.QUESTION) == 1


async def test_a_question_for_people_is_not_asked_twice(memory):
    gaps = [("Which customers see it?", True)]
    provider = ScriptedProvider(fallback=stuck("low", "low", gaps=gaps))
    engine, outbox = await make(memory, provider)
    rec = await investigate(engine, "why do some customers see errors")
    assert rec.status == ThreadStatus.WAITING
    rec = await engine.run(task("no idea, sorry", thread=rec.thread))
    asked = [p for p in outbox.posts if p.kind == ReplyKind.QUESTION]
    assert len(asked) == 1  # the same gap again: people already had their say
    assert rec.status == ThreadStatus.COMPLETE and outbox.turns()[-1].mode == "planner"


# --- failures and recovery ------------------------------------------------------------------------


@pytest.mark.parametrize("error", [ProviderTimeout("The model took longer than 60 s to answer."), ProviderRateLimited("Rate limited (429) after 2 retries.")])
async def test_model_failure_is_reported_in_voice_and_resumable(memory, error):
    provider = ScriptedProvider(json.dumps(research()), error, fallback=by_mode)
    engine, outbox = await make(memory, provider)
    t = task("intermittent 401s on checkout", kind=TaskKind.INVESTIGATE)
    rec = await engine.run(t)
    failure = outbox.posts[-1]
    assert failure.kind == ReplyKind.ERROR and failure.voice.name == "karen"
    assert error.reason in failure.text and "continue" in failure.text and "Traceback" not in failure.text
    assert rec.status == ThreadStatus.PAUSED
    assert (await memory.get_task((await memory.accept_task(t)).task_id)).status == TaskStatus.FAILED
    rec = await engine.run(task("continue", thread=rec.thread))
    assert rec.status == ThreadStatus.COMPLETE
    assert [r.mode for r in outbox.turns()] == ["researcher", "critic", "planner"]


async def test_a_bug_never_posts_a_trace(memory):
    provider = ScriptedProvider(fallback=by_mode)
    engine, outbox = await make(memory, provider)
    outbox.fail_times = 1  # the first post blows up
    await engine.run(task("sophia, hi"))
    assert outbox.posts[-1].kind == ReplyKind.ERROR and "Traceback" not in outbox.posts[-1].text


async def test_crash_between_accept_and_reply_resumes_once(tmp_path):
    path = tmp_path / "crash.db"
    mem = await SQLiteMemory.open(path)
    gate = asyncio.Event()

    async def hang_on_second(request):
        calls.append(request.schema_name)
        if len(calls) == 2:
            await gate.wait()  # the process "dies" here
        return ModelResponse(text=by_mode(request))

    calls: list = []
    provider = ScriptedProvider()
    provider.generate = hang_on_second  # type: ignore[method-assign]
    engine, outbox1 = await make(mem, provider)
    await engine.submit(task("intermittent 401s on checkout", kind=TaskKind.INVESTIGATE))
    unstarted = task("sophia, are you there?")
    while len(calls) < 2:
        await asyncio.sleep(0.01)
    for job in list(engine._jobs):
        job.cancel()
    await asyncio.gather(*engine._jobs, return_exceptions=True)
    await mem.accept_task(unstarted)  # accepted, then the crash: never worked on
    await mem.close()
    assert [r.kind for r in outbox1.posts] == [ReplyKind.ROOT, ReplyKind.TURN]

    mem2 = await SQLiteMemory.open(path)
    try:
        engine2, outbox2 = await make(mem2, ScriptedProvider(fallback=by_mode))
        await engine2.wait_idle()
        keys = [r.key for r in outbox1.posts + outbox2.posts]
        assert len(keys) == len(set(keys))  # nothing posted twice
        assert [r.mode for r in outbox2.turns()] == ["critic", "planner"]
        assert any(r.kind == ReplyKind.ANSWER for r in outbox2.posts)
        assert await mem2.unfinished_tasks() == []
    finally:
        await mem2.close()


# --- concurrency ----------------------------------------------------------------------------------


async def test_one_thread_in_order_different_threads_concurrently(memory):
    active = {"now": 0, "max": 0}

    async def slow(request):
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        await asyncio.sleep(0.05)
        active["now"] -= 1
        return ModelResponse(text=request.messages[-1].content)

    provider = ScriptedProvider()
    provider.generate = slow  # type: ignore[method-assign]
    engine, outbox = await make(memory, provider)
    first = task("sophia, one")
    await engine.submit(first)
    for word in ["two", "three", "four"]:
        await engine.submit(task(word, thread=first.thread))
    await engine.wait_idle()
    same_thread = [r.text for r in outbox.posts if r.thread == first.thread]
    assert same_thread == ["one", "two", "three", "four"]
    assert active["max"] == 1

    await asyncio.gather(*(engine.submit(task(f"sophia, q{i}")) for i in range(5)))
    await engine.wait_idle()
    assert active["max"] >= 2


async def test_a_reply_during_the_opening_turns_waits_for_them(memory):
    provider = ScriptedProvider(fallback=by_mode, delay=0.05)
    engine, outbox = await make(memory, provider)
    await engine.submit(task("intermittent 401s on checkout", kind=TaskKind.INVESTIGATE))
    while not outbox.turns():  # the root is out and the first turn posted: the thread is known
        await asyncio.sleep(0.01)
    root = outbox.posts[0]
    await engine.submit(task("it only happens in the EU", thread="m1"))
    await engine.wait_idle()
    assert root.kind == ReplyKind.ROOT
    modes = [r.mode for r in outbox.turns()]
    # the opening run finishes (researcher, critic, planner) before the reply reopens it
    assert modes[:3] == ["researcher", "critic", "planner"] and modes[3] == "researcher"
    rec = await memory.find_thread("test", "W1", "C1", "m1")
    roles = [t.role for t in await memory.turns(rec.id)]
    assert roles[:5] == [TurnRole.HUMAN, TurnRole.PERSONA, TurnRole.PERSONA, TurnRole.PERSONA, TurnRole.HUMAN]


async def test_forgetting_a_channel_while_a_turn_runs_loses_nothing_else(memory):
    gate = asyncio.Event()

    async def wait_then_answer(request):
        await gate.wait()
        return ModelResponse(text=by_mode(request))

    provider = ScriptedProvider()
    provider.generate = wait_then_answer  # type: ignore[method-assign]
    engine, outbox = await make(memory, provider)
    await engine.submit(task("sophia, a question", channel="doomed"))
    await asyncio.sleep(0.05)
    await engine.memory_forget("test", "W1", "doomed")
    gate.set()
    await engine.wait_idle()  # no exception escapes the worker
    assert await memory.list_threads("test", "W1", "doomed") == []
    await engine.run(task("sophia, still here?", channel="kept"))
    assert outbox.posts[-1].kind == ReplyKind.ANSWER


# --- channel memory: evidence only --------------------------------------------------------------


async def test_recall_brings_back_what_people_said_and_found_never_filler(memory):
    """Offline rehearsal turns, unusable replies and empty answers are stored (the thread shows
    them) but never come back as channel memory; people's words and real findings do."""
    from engine.providers import OfflineProvider

    offline, _ = await make(memory, OfflineProvider())
    await offline.run(task("sophia, the zookeeper quorum keeps flapping"))
    await offline.run(task("zookeeper quorum lost after the kernel upgrade", kind=TaskKind.INVESTIGATE))
    real = ScriptedProvider(
        "",  # an empty answer from the model
        "not json", "still not json",  # a researcher turn that never validates
        fallback=lambda r: json.dumps(research(summary="Zookeeper quorum drops when the leader's disk stalls"))
        if r.schema_name == "researcher" else by_mode(r),
    )
    engine, _ = await make(memory, real, max_auto_turns=2)
    await engine.run(task("sophia, what about zookeeper quorum?"))
    await engine.run(task("zookeeper quorum flaps again", kind=TaskKind.INVESTIGATE))
    await engine.run(task("zookeeper quorum: is it the leader?", kind=TaskKind.INVESTIGATE))

    found = await memory.recall("test", "W1", "C1", "zookeeper quorum", limit=50)
    texts = " ".join(r.text for r in found)
    assert "Offline rehearsal" not in texts and "offline rehearsal" not in texts
    assert "no answer came back" not in texts and "not json" not in texts
    assert "leader's disk stalls" in texts  # what a persona really found
    assert "the zookeeper quorum keeps flapping" in texts and "kernel upgrade" in texts  # what people said
    assert {r.author for r in found} >= {"U1", "sophia"}
    everything = [t for rec in await memory.list_threads("test", "W1", "C1") for t in await memory.turns(rec.id)]
    assert any(t.model == "offline" for t in everything)  # kept in the thread, only not recalled


async def test_offline_says_how_to_connect_a_model_once_per_thread(memory):
    from engine.providers import OfflineProvider

    engine, outbox = await make(memory, OfflineProvider())
    first = task("sophia, why did signups drop since 00:00 UTC on Monday?")
    await engine.run(first)
    await engine.run(task("and on mobile?", thread=first.thread))
    await engine.run(task("karen, what do customers say?", thread=first.thread))
    answers = [p.text for p in outbox.posts if p.kind == ReplyKind.ANSWER]
    assert len(answers) == 3
    assert "ANTHROPIC_API_KEY" in answers[0]  # the first post of the thread explains
    assert all(a.startswith("🧪 Offline rehearsal\n") and "API_KEY" not in a for a in answers[1:])  # then a short mark
    assert "00:00 UTC" in answers[0]  # the person's words, whole

    rec = await investigate(engine, "intermittent 401s on checkout")
    posts = [p for p in outbox.posts if p.thread == rec.thread or p.kind == ReplyKind.ROOT and p.investigation_id == rec.id]
    assert sum("API_KEY" in p.text for p in posts) == 1 and "API_KEY" in posts[0].text
    assert all(p.text.startswith("🧪 Offline rehearsal") for p in posts if p.kind == ReplyKind.TURN)


# --- readable ids ---------------------------------------------------------------------------------


async def test_investigation_ids_are_numbered_per_channel_and_unique_across_platforms(memory):
    engine, _ = await make(memory, ScriptedProvider(fallback=by_mode))
    engine.register_outbox("slack", FakeOutbox())
    first = await investigate(engine, "intermittent 401s on checkout", channel="#payments")
    second = await investigate(engine, "checkout 401s again", channel="payments")
    slack = await investigate(engine, "checkout 401s in slack", channel="PAYMENTS", platform="slack")
    assert (first.id, second.id, slack.id) == ("payments-1", "payments-2", "payments-3")
    chat = await engine.run(task("sophia, hello there", channel="payments"))
    assert chat.id == "payments-c1"


async def test_a_resumed_investigation_keeps_its_id(tmp_path):
    path = tmp_path / "crash.db"
    mem = await SQLiteMemory.open(path)
    gate = asyncio.Event()
    calls: list = []

    async def hang(request):
        calls.append(request)
        await gate.wait()  # the process "dies" during the first turn

    provider = ScriptedProvider()
    provider.generate = hang  # type: ignore[method-assign]
    engine, outbox1 = await make(mem, provider)
    await engine.submit(task("intermittent 401s on checkout", kind=TaskKind.INVESTIGATE, channel="ops"))
    while not calls:
        await asyncio.sleep(0.01)
    for job in list(engine._jobs):
        job.cancel()
    await asyncio.gather(*engine._jobs, return_exceptions=True)
    await mem.close()
    assert outbox1.posts[0].investigation_id == "ops-1"

    mem2 = await SQLiteMemory.open(path)
    try:
        engine2, outbox2 = await make(mem2, ScriptedProvider(fallback=by_mode))
        await engine2.wait_idle()
        assert {r.investigation_id for r in outbox2.posts if r.investigation_id} == {"ops-1"}
        assert [t.id for t in await mem2.list_threads("test", "W1", "ops")] == ["ops-1"]
    finally:
        await mem2.close()


# --- crashes: nothing lost, nothing doubled, nothing left hanging -------------------------------


def crashing(*, after: int = 0):
    """A model that answers `after` requests well, then takes the process down (SIGKILL-like)."""
    seen: list = []

    async def generate(request):
        seen.append(request)
        if len(seen) > after:
            raise Crash("the model call never returned")
        return ModelResponse(text=by_mode(request))

    provider = ScriptedProvider()
    provider.generate = generate  # type: ignore[method-assign]
    provider.seen = seen  # type: ignore[attr-defined]
    return provider


async def restart(memory, provider, shown: dict, **config) -> tuple[Engine, FakeOutbox]:
    """A new process on the same database and the same platform: resumes what was unfinished."""
    engine = Engine(memory, provider, PersonaRegistry.defaults(), EngineConfig(**config))
    outbox = FakeOutbox(shown=shown)
    engine.register_outbox("test", outbox)
    await engine.start()
    await engine.wait_idle()
    return engine, outbox


async def human_turns(memory, rec_id: str) -> list:
    return [t for t in await memory.turns(rec_id) if t.role == TurnRole.HUMAN]


async def test_resuming_a_task_twice_stores_the_persons_message_once(memory):
    engine, outbox = await make(memory, crashing())
    t = task("intermittent 401s on checkout", kind=TaskKind.INVESTIGATE)
    await engine.submit(t)
    await engine.wait_idle()  # died in the first model call
    _, again = await restart(memory, crashing(), outbox.shown)  # and again, after restarting
    provider = ScriptedProvider(fallback=by_mode)
    _, last = await restart(memory, provider, outbox.shown)
    rec = await memory.get_thread("c1-1")
    assert [h.text for h in await human_turns(memory, rec.id)] == [t.text]
    prompt = provider.requests[-1].messages[-1].content
    assert prompt.count("intermittent 401s on checkout") <= 2  # the title, and the message once
    assert rec.status == ThreadStatus.COMPLETE and await memory.unfinished_tasks() == []


async def test_a_resumed_conversation_stores_the_message_once_and_replaces_its_placeholder(memory):
    engine, outbox = await make(memory, crashing())
    t = task("Sophia, why did signups drop?")
    await engine.submit(t)
    await engine.wait_idle()
    [waiting] = outbox.dangling()  # she was "thinking" when the process died
    _, after = await restart(memory, ScriptedProvider("Pricing."), outbox.shown)
    assert outbox.dangling() == []
    assert outbox.shown[waiting]["key"].startswith("turn:") and "Pricing." in outbox.shown[waiting]["text"]
    assert len(outbox.shown) == 1  # the answer is the placeholder, updated: nothing beside it
    assert len(await human_turns(memory, "c1-c1")) == 1


async def test_a_placeholder_of_a_task_that_will_not_resume_becomes_a_notice(memory):
    engine, outbox = await make(memory, ScriptedProvider(ProviderTimeout("The model took too long.")))
    outbox.fail_times = 2  # the platform is down for the failure report, and for the clean-up
    await engine.run(task("Sophia, why did signups drop?"))
    assert len(outbox.dangling()) == 1 and (await memory.unfinished_tasks()) == []
    await restart(memory, ScriptedProvider(), outbox.shown)
    assert outbox.dangling() == []
    [message] = outbox.shown.values()
    assert "interrupted" in message["text"] and message["persona"] == "sophia"


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_pause_is_never_stored_without_its_notice(memory, when):
    engine, outbox = await make(memory, ScriptedProvider(fallback=by_mode), max_auto_turns=1)
    setattr(outbox, f"crash_{when}", lambda reply: reply.key.startswith("paused:"))
    await engine.submit(task("intermittent 401s on checkout", kind=TaskKind.INVESTIGATE))
    await engine.wait_idle()  # died posting the notice (before the platform took it, or just after)
    _, after = await restart(memory, ScriptedProvider(fallback=by_mode), outbox.shown, max_auto_turns=1)
    rec = await memory.get_thread("c1-1")
    assert rec.status == ThreadStatus.PAUSED
    notices = [m for m in outbox.shown.values() if m["key"].startswith("paused:")]
    assert len(notices) == 1  # told once: not lost, and not doubled either
    keys = [m["key"] for m in outbox.shown.values()]
    assert len(keys) == len(set(keys)) and outbox.dangling() == []


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_close_is_never_stored_without_its_notice(memory, when):
    engine, outbox = await make(memory, ScriptedProvider(fallback=by_mode))
    rec = await engine.run(task("intermittent 401s on checkout", kind=TaskKind.INVESTIGATE))
    setattr(outbox, f"crash_{when}", lambda reply: reply.key.startswith("close:"))
    await engine.submit(task(kind=TaskKind.CLOSE, thread=rec.thread))
    await engine.wait_idle()  # died posting "closed by" (before the platform took it, or just after)
    if when == "before":
        assert (await memory.get_thread(rec.id)).status != ThreadStatus.CLOSED  # not closed in silence
    await restart(memory, ScriptedProvider(fallback=by_mode), outbox.shown)
    assert (await memory.get_thread(rec.id)).status == ThreadStatus.CLOSED
    told = [m["text"] for m in outbox.shown.values() if m["key"].startswith(("close:", "closed:"))]
    assert len(told) == 1 and "closed by" in told[0]  # told once, and not "already closed"


async def test_a_post_the_platform_took_just_before_the_crash_is_not_posted_again(memory):
    engine, outbox = await make(memory, ScriptedProvider(fallback=by_mode))
    outbox.crash_after = lambda reply: reply.kind == ReplyKind.TURN and reply.mode == "critic"
    await engine.submit(task("intermittent 401s on checkout", kind=TaskKind.INVESTIGATE))
    await engine.wait_idle()
    _, after = await restart(memory, ScriptedProvider(fallback=by_mode), outbox.shown)
    keys = [m["key"] for m in outbox.shown.values()]
    assert len(keys) == len(set(keys)) and outbox.dangling() == []
    assert [r.mode for r in after.turns()] == ["planner"]  # the critic's turn was found, not reposted
    assert (await memory.get_thread("c1-1")).status == ThreadStatus.COMPLETE


async def test_a_failure_report_comes_before_the_pause_it_causes(memory):
    engine, outbox = await make(memory, ScriptedProvider(json.dumps(research()), ProviderTimeout("Too slow.")))
    outbox.crash_before = lambda reply: reply.kind == ReplyKind.ERROR
    await engine.submit(task("intermittent 401s on checkout", kind=TaskKind.INVESTIGATE))
    await engine.wait_idle()
    assert (await memory.get_thread("c1-1")).status == ThreadStatus.ACTIVE  # not paused in silence
    _, after = await restart(memory, ScriptedProvider(ProviderTimeout("Still too slow.")), outbox.shown)
    assert [r.kind for r in after.posts] == [ReplyKind.ERROR]
    assert (await memory.get_thread("c1-1")).status == ThreadStatus.PAUSED and outbox.dangling() == []


def research_then_ask(request) -> str:
    """A hypothesis, a critique that knocks it down, then a second look that needs people."""
    if request.schema_name != "researcher":
        return json.dumps(critique("low"))
    challenged = "Plausible but unproven" in request.messages[-1].content  # the critique is in the thread
    return json.dumps(research("low", gaps=[("Which customers see it?", True)]) if challenged else research("medium"))


RESUMED_ENDINGS = {
    "complete": (by_mode, {}, ThreadStatus.COMPLETE),
    "waiting": (research_then_ask, {}, ThreadStatus.WAITING),
    "paused": (by_mode, {"max_auto_turns": 2}, ThreadStatus.PAUSED),
}


@pytest.mark.parametrize("ending", list(RESUMED_ENDINGS))
async def test_resuming_a_task_whose_turns_all_ran_changes_nothing(memory, ending):
    """The process died after the last turn's state was stored, before the task was marked
    done: on restart the task replays what it did, and must not move the thread back."""
    answer, config, status = RESUMED_ENDINGS[ending]
    engine, outbox = await make(memory, ScriptedProvider(fallback=answer), **config)
    accepted = await engine.submit(task("why do some orders fail", kind=TaskKind.INVESTIGATE))
    await engine.wait_idle()
    before = await memory.get_thread("c1-1")
    assert before.status == status and before.turn_count >= 2
    await memory.set_task_status(accepted.task_id, TaskStatus.RUNNING)
    provider = ScriptedProvider(fallback=answer)
    _, after = await restart(memory, provider, outbox.shown, **config)
    rec = await memory.get_thread("c1-1")
    assert (rec.phase, rec.status, rec.turn_count) == (before.phase, before.status, before.turn_count)
    assert after.posts == [] and provider.requests == []  # nothing posted twice, no model asked
    assert await memory.unfinished_tasks() == []


@pytest.mark.parametrize("kind", [TaskKind.MESSAGE, TaskKind.CHALLENGE])
async def test_resuming_a_follow_up_whose_turns_all_ran_never_stores_an_earlier_state(memory, kind):
    """A reply (or Challenge) reopened a complete investigation and completed it again; the task
    resumes: it must not reopen the thread a second time, not even for a moment."""
    engine, outbox = await make(memory, ScriptedProvider(fallback=by_mode))
    rec = await investigate(engine, "intermittent 401s on checkout")
    text = "the gateway logs show 401s at 55 minutes" if kind == TaskKind.MESSAGE else ""
    accepted = await engine.submit(task(text, kind=kind, thread=rec.thread))
    await engine.wait_idle()
    before = await memory.get_thread(rec.id)
    assert before.status == ThreadStatus.COMPLETE and before.turn_count > 3
    await memory.set_task_status(accepted.task_id, TaskStatus.RUNNING)
    stored: list = []
    update = memory.update_thread

    async def recording(thread):
        stored.append((thread.phase, thread.status))
        return await update(thread)

    memory.update_thread = recording  # type: ignore[method-assign]
    _, after = await restart(memory, ScriptedProvider(fallback=by_mode), outbox.shown)
    assert set(stored) <= {(Phase.COMPLETE, ThreadStatus.COMPLETE)}, stored
    assert after.posts == [] and (await memory.get_thread(rec.id)).turn_count == before.turn_count


async def test_a_version_1_database_is_migrated_and_keeps_its_work(tmp_path):
    import sqlite3

    from engine.memory.schema import SCHEMA_V1, SCHEMA_VERSION

    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as con:  # what the previous version created
        con.executescript(SCHEMA_V1 + "PRAGMA user_version = 1;")
    mem = await SQLiteMemory.open(path)
    try:
        await mem.accept_task(task("sophia, still there?"))
        engine, outbox = await make(mem, ScriptedProvider("Yes."))
        await engine.wait_idle()
        assert [r.kind for r in outbox.posts] == [ReplyKind.ANSWER] and outbox.dangling() == []
        assert (await mem._rows("PRAGMA user_version"))[0][0] == SCHEMA_VERSION
    finally:
        await mem.close()
