"""`/crew` and the crew hand-off button on Slack, driven as Slack drives them (signed requests
into Bolt, the Web API pointed at the local stand-in), and the crew's posts as Block Kit.

The engine here is the small in-memory one of `tests.test_slack`, taught to open a crew's thread
like an investigation's: what is checked is the `Task` the adapter hands over and what Slack sees.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest_asyncio

from engine.models import Action, Reply, ReplyKind, Task, TaskKind
from tests.servers.slack_api import TEAM
from tests.test_slack import FakeEngine, Rig, build_rig, slack_api, visible_text  # noqa: F401 - fixture

__all__ = ["slack_api"]

ROOT_TS = "1600000000.000100"


class CrewEngine(FakeEngine):
    """A new crew (CREW without a thread) gets a ROOT post whose ts becomes its thread."""

    async def _answer(self, task: Task) -> None:
        if task.kind is TaskKind.CREW and task.thread is None:
            persona = self.personas["karen"]
            outbox = self.outboxes[task.platform]
            root = await outbox.post(Reply(kind=ReplyKind.ROOT, voice=persona.voice, platform=task.platform, workspace=task.workspace,
                                           channel=task.channel, thread=None, text=f"Crew: {task.text}", title=task.text))
            task = task.model_copy(update={"thread": root.thread})
        await super()._answer(task)


@pytest_asyncio.fixture
async def rig(slack_api, tmp_path):  # noqa: F811 - the imported fixture
    rig = await build_rig(slack_api, tmp_path, engine=CrewEngine())
    yield rig
    await rig.settle()
    await rig.adapter.stop()


# --- /crew ------------------------------------------------------------------------------------


async def test_crew_submits_a_crew_task_with_its_options_and_opens_a_thread(rig: Rig) -> None:
    response, _ = await rig.command("/crew", "sales high: grow the Q3 pipeline")
    assert response.status == 200 and "crew" in response.body.lower()  # the ack: shown to the caller only
    await rig.settle()
    [task] = rig.engine.tasks
    assert task.kind is TaskKind.CREW and task.thread is None and task.persona is None
    assert task.text == "grow the Q3 pipeline" and task.options == {"domain": "sales", "complexity": "high"}
    assert (task.platform, task.workspace, task.channel, task.user) == ("slack", TEAM, "C0GENERAL", "U0ALICE")
    root, placeholder = rig.api.posts()[:2]
    assert "thread_ts" not in root.params and placeholder["thread_ts"] == root.response["ts"]


async def test_crew_reads_spelled_out_options_and_leaves_a_named_persona_for_the_engine(rig: Rig) -> None:
    await rig.command("/crew", "domain=research complexity=low sophia, why do trials churn?")
    await rig.command("/crew", "--domain data what moved retention last month?")
    await rig.command("/crew", "Sales is down: what do we do?")  # not options: the words are the work
    await rig.settle()
    first, second, third = rig.engine.tasks
    assert first.text == "sophia, why do trials churn?" and first.options == {"domain": "research", "complexity": "low"}
    assert second.text == "what moved retention last month?" and second.options == {"domain": "data", "complexity": "medium"}
    assert third.text == "Sales is down: what do we do?" and third.options == {"complexity": "medium"}
    assert len({t.event_id for t in rig.engine.tasks}) == 3


async def test_a_bad_option_is_answered_privately_at_once_and_nothing_starts(rig: Rig) -> None:
    for text in ("domain=astrology what do the stars say?", "complexity=extreme plan the launch", "sales marketing: both?"):
        response, rid = await rig.command("/crew", text)
        assert response.status == 200
        body = response.body
        assert "Nothing was started" in body and "/crew" in body, body  # the ack's text: only the caller sees it
        assert "Error" not in body and "Traceback" not in body
    await rig.settle()
    assert rig.engine.tasks == [] and rig.api.posts() == []
    response, _ = await rig.command("/crew", "domain=astrology stars")
    assert "astrology" in response.body and "sales" in response.body  # what was wrong, and what would do


async def test_crew_without_work_shows_how_to_ask(rig: Rig) -> None:
    for text in ("", "   ", "high:", "karen"):
        response, _ = await rig.command("/crew", text)
        assert response.status == 200 and "Start a crew" in response.body, text
    await rig.settle()
    assert rig.engine.tasks == [] and rig.api.posts() == []


async def test_crew_is_refused_politely_where_orchestra_is_not_allowed(slack_api, tmp_path) -> None:  # noqa: F811
    rig = await build_rig(slack_api, tmp_path, engine=CrewEngine(), allowed_users=["U0BOB"])
    try:
        response, _ = await rig.command("/crew", "plan the offsite")
        await rig.settle()
        assert "isn't enabled" in response.body and rig.engine.tasks == []
    finally:
        await rig.adapter.stop()


# --- the hand-off button ----------------------------------------------------------------------


async def post_plan(rig: Rig) -> Any:
    """A planner turn offering to hand its plan to a crew, posted through the outbox."""
    actions = [
        Action(kind=TaskKind.CREW, label="Hand to a crew", investigation_id="inv-42"),
        Action(kind=TaskKind.CLOSE, label="Close", investigation_id="inv-42"),
    ]
    reply = Reply(
        kind=ReplyKind.TURN, voice=rig.engine.personas["cherry"].voice, platform="slack", workspace=TEAM, channel="C0GENERAL",
        thread=ROOT_TS, text="Cherry · planner\nPhase 1: confirm.", title="Cherry · planner", mode="planner",
        investigation_id="inv-42", actions=actions,
    )
    posted = await rig.adapter.outbox.post(reply)
    [call] = [p for p in rig.api.posts() if p.response["ts"] == posted.message_id]
    return call


def click_on(turn: Any, **kw: Any) -> dict[str, Any]:
    return dict(message_ts=turn.response["ts"], thread_ts=ROOT_TS, channel=turn["channel"], text=turn["text"], blocks=turn.blocks, **kw)


async def test_the_plan_offers_a_crew_button_carrying_the_investigation(rig: Rig) -> None:
    turn = await post_plan(rig)
    [actions] = [b for b in turn.blocks if b["type"] == "actions"]
    crew, close = actions["elements"]
    assert crew["action_id"] == "orchestra_crew" and crew["value"] == "inv-42" and crew["text"]["text"] == "Hand to a crew"
    assert crew["style"] == "primary" and close["action_id"] == "orchestra_close"


async def test_a_click_hands_the_plan_to_a_crew_once_even_on_a_double_click(rig: Rig) -> None:
    turn = await post_plan(rig)
    await asyncio.gather(*(rig.click("orchestra_crew", "inv-42", **click_on(turn)) for _ in range(3)))
    await rig.settle()
    [task] = rig.engine.tasks
    assert task.kind is TaskKind.CREW and task.text == "" and task.options == {}
    assert task.thread == ROOT_TS and task.channel == "C0GENERAL" and task.message_id == turn.response["ts"]
    [update] = [c for c in rig.api.of("chat.update") if c["ts"] == turn.response["ts"]]
    assert "↪ Hand to a crew requested by <@U0ALICE>" in visible_text(update)
    assert not any(b["type"] == "actions" for b in update.blocks)


async def test_the_button_still_works_after_a_restart_and_a_redelivered_click_is_one_task(slack_api, tmp_path) -> None:  # noqa: F811
    engine = CrewEngine()  # stands for the SQLite task store, which outlives the process
    before = await build_rig(slack_api, tmp_path, engine=engine)
    turn = await post_plan(before)
    await before.adapter.stop()

    after = await build_rig(slack_api, tmp_path, engine=engine)  # a new process: nothing in memory
    try:
        click = click_on(turn, action_ts="1700000100.000200")
        first = await after.click("orchestra_crew", "inv-42", **click)
        await after.settle()
        again = await build_rig(slack_api, tmp_path, engine=engine)  # and another restart, then Slack's retry
        try:
            second = await again.click("orchestra_crew", "inv-42", **click)
            await again.settle()
        finally:
            await again.adapter.stop()
        assert first.status == 200 and second.status == 200
        [task] = engine.tasks
        assert task.kind is TaskKind.CREW and task.thread == ROOT_TS and task.text == ""
    finally:
        await after.settle()
        await after.adapter.stop()


# --- the crew's posts -------------------------------------------------------------------------

from adapters.slack.render import render_reply  # noqa: E402
from engine.personas import PersonaRegistry  # noqa: E402

VOICE = PersonaRegistry.defaults()["karen"].voice


def crew_reply(mode: str, content: dict[str, Any], text: str = "the whole text", **kw: Any) -> Reply:
    return Reply(kind=ReplyKind.TURN, voice=VOICE, platform="slack", workspace=TEAM, channel="C1", thread="1.1",
                 text=text, mode=mode, content=content, **kw)


def shown_text(reply: Reply) -> str:
    return "\n".join(visible(m.blocks) for m in render_reply(reply))


def visible(blocks: list[dict[str, Any]]) -> str:
    out = []
    for b in blocks:
        if isinstance(b.get("text"), dict):
            out.append(b["text"]["text"])
        out += [e.get("text", "") for e in b.get("elements", []) if isinstance(e.get("text"), str)]
    return "\n".join(out)


def test_the_crew_plan_shows_her_review_the_team_and_the_numbered_tasks() -> None:
    content = {
        "review": "A sound split <!here>; I'd keep the pricing check first.",
        "agents": [{"role": "Senior sales lead", "seniority": "senior", "domain": "sales", "goal": "grow Q3"},
                   {"role": "Marketing support", "seniority": "mid", "domain": "marketing"}, "Data helper"],
        "tasks": [{"description": "Audit the pipeline", "agent": "Senior sales lead"}, "Draft the campaign"],
    }
    text = shown_text(crew_reply("crew-plan", content, title="Karen · crew plan"))
    assert "Karen" in text and "Crew plan" in text  # the byline names the mode
    assert "I'd keep the pricing check first" in text and "<!here>" not in text and "&lt;!here&gt;" in text
    assert "• *Senior sales lead* (senior, sales): grow Q3" in text and "• *Marketing support* (mid, marketing)" in text
    assert "• *Data helper*" in text
    assert "1. Audit the pipeline → _Senior sales lead_\n2. Draft the campaign" in text
    assert "the whole text" not in text  # the structured content replaces the plain rendering


def test_progress_is_one_short_line_per_agent_and_task() -> None:
    started = render_reply(crew_reply("crew-progress", {"agent": "Senior sales lead", "task": "Audit the pipeline", "status": "started"}))
    done = render_reply(crew_reply("crew-progress", {"agent": "Senior sales lead", "task": "Audit the pipeline", "status": "done"}))
    assert len(started) == 1 and len(done) == 1
    assert ":hourglass_flowing_sand: *Senior sales lead* is working on: Audit the pipeline" in visible(started[0].blocks)
    assert ":white_check_mark: *Senior sales lead* finished: Audit the pipeline" in visible(done[0].blocks)
    assert all(b["type"] == "context" for b in started[0].blocks)  # small, not a wall of sections
    titled = render_reply(crew_reply("crew-progress", {"agent": "Lead", "task": "Audit", "status": "done"}, title="Karen · crew"))
    assert [b["type"] for b in titled[0].blocks] == ["context", "context"]  # no header per progress line


def test_the_result_shows_the_work_and_the_tokens_it_used() -> None:
    usage = {"prompt_tokens": 1234, "completion_tokens": 567, "total_tokens": 1801, "model": "gpt-x"}
    text = shown_text(crew_reply("crew-result", {"result": "Three levers: price, reach, retention.", "usage": usage}))
    assert "*:package: Result*\nThree levers: price, reach, retention." in text
    assert ":bar_chart: Tokens: 1,234 in · 567 out · 1,801 in all" in text


def test_the_review_shows_her_verdict_then_her_words() -> None:
    text = shown_text(crew_reply("crew-review", {"review": "Good on reach, thin on pricing.", "verdict": "accept with changes"}))
    assert text.index("*:scales: Verdict:* accept with changes") < text.index("Good on reach, thin on pricing.")


def test_crew_content_of_another_shape_falls_back_to_the_text_and_a_long_result_is_split_not_cut() -> None:
    odd = shown_text(crew_reply("crew-plan", {"agents": "not a list of agents"[:0], "tasks": None}, text="Karen reviewed the plan."))
    assert "Karen reviewed the plan." in odd
    long = " ".join(f"word{i}" for i in range(8000))
    messages = render_reply(crew_reply("crew-result", {"result": long, "usage": {}}))
    assert len(messages) > 1 and all(len(m.blocks) <= 50 for m in messages)
    joined = "".join(visible(m.blocks) for m in messages)
    assert "word0 " in joined and "word7999" in joined
