"""Scheduled jobs end to end through Slack: signed requests → Bolt → the real engine (SQLite file)
→ the Slack outbox → the local Slack Web API. The jobs are called with an explicit `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.engine import Engine, EngineConfig
from engine.jobs import nudge_waiting, send_digests
from engine.memory.records import ThreadStatus
from engine.memory.store import SQLiteMemory
from engine.personas import PersonaRegistry
from tests.fakes import ScriptedProvider, by_mode, research
from tests.servers.slack_api import TEAM, SlackApiServer
from tests.test_slack import Rig, build_rig, slack_api, visible_text

__all__ = ["slack_api"]

AFTER = timedelta(hours=4)
QUESTION = "Which region saw the drop first?"


async def open_rig(api: SlackApiServer, tmp: Path, *answers) -> Rig:
    memory = await SQLiteMemory.open(tmp / "orchestra.db")
    engine = Engine(memory, ScriptedProvider(*answers, fallback=by_mode), PersonaRegistry.defaults(), EngineConfig())
    rig = await build_rig(api, tmp, engine=engine)
    await rig.adapter.verify(socket_mode=False)  # as at start-up: auth.test
    await engine.start()
    return rig


async def close_rig(rig: Rig) -> None:
    await rig.settle()
    await rig.adapter.stop()
    await rig.engine.stop()
    await rig.engine.memory.close()


async def test_an_investigation_waiting_for_people_is_nudged_once_in_its_thread_as_its_lead(slack_api, tmp_path) -> None:
    rig = await open_rig(slack_api, tmp_path, research("low", gaps=[(QUESTION, True)]))
    try:
        response, _ = await rig.command("/investigate", "sophia why did sign-ups drop last week?")
        assert response.status == 200
        await rig.settle()
        root = slack_api.posts()[0]
        root_ts = root.response["ts"]
        rec = await rig.engine.memory.find_thread("slack", TEAM, root["channel"], root_ts)
        assert rec.status == ThreadStatus.WAITING and rec.lead == "sophia"
        before = len(slack_api.posts())

        assert await nudge_waiting(rig.engine, rec.updated_at + AFTER - timedelta(minutes=1), AFTER) == 0
        assert await nudge_waiting(rig.engine, rec.updated_at + AFTER + timedelta(minutes=1), AFTER) == 1
        await rig.settle()
        [nudge] = slack_api.posts()[before:]
        assert nudge["thread_ts"] == root_ts and nudge["channel"] == root["channel"]
        assert nudge["username"] == "Sophia" and nudge["icon_emoji"] == ":microscope:"
        assert QUESTION in visible_text(nudge) and "waiting on you" in visible_text(nudge)
        assert await nudge_waiting(rig.engine, rec.updated_at + 3 * AFTER, AFTER) == 0
    finally:
        await close_rig(rig)

    rig = await open_rig(slack_api, tmp_path)  # a restart: a new process on the same database
    try:
        posted = len(slack_api.posts())
        assert await nudge_waiting(rig.engine, rec.updated_at + 4 * AFTER, AFTER) == 0
        await rig.settle()
        assert len(slack_api.posts()) == posted

        # the digest: a channel post whose question links to the thread, as "Copy link" would
        now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
        assert await send_digests(rig.engine, now, [("slack", None, root["channel"]), ("slack", None, "C0OTHER")]) == 1
        await rig.settle()
        [digest] = slack_api.posts()[posted:]
        assert "thread_ts" not in digest.params and digest["channel"] == root["channel"]
        link = f"https://orchestra-test.slack.com/archives/{root['channel']}/p{root_ts.replace('.', '')}"
        assert f"<{link}|{rec.title}>" in visible_text(digest) and rec.title == "why did sign-ups drop last week?"
        assert rec.id in visible_text(digest) and "waiting for your answer" in visible_text(digest)
    finally:
        await close_rig(rig)
