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
