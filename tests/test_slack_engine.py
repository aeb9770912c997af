"""End to end: signed Slack requests → Bolt → the real engine (offline provider, SQLite file) →
the Slack outbox → the local Slack Web API. What a person in the channel would see."""

from __future__ import annotations

from pathlib import Path

import pytest_asyncio

from engine.engine import Engine, EngineConfig
from engine.memory.store import SQLiteMemory
from engine.personas import PersonaRegistry
from engine.providers import OfflineProvider
from tests.servers.slack_api import BOT_USER, SlackApiServer, mention_event, message_event
from tests.test_slack import ADMIN, Rig, build_rig, slack_api, visible_text  # noqa: F401 - fixture

__all__ = ["slack_api"]


async def live_rig(api: SlackApiServer, tmp: Path) -> tuple[Rig, SQLiteMemory]:
    memory = await SQLiteMemory.open(tmp / "orchestra.db")
    engine = Engine(memory, OfflineProvider(), PersonaRegistry.defaults(), EngineConfig())
    rig = await build_rig(api, tmp, engine=engine)
    await engine.start()
    return rig, memory


async def close(rig: Rig, memory: SQLiteMemory) -> None:
    await rig.settle()
    await rig.adapter.stop()
    await rig.engine.stop()
    await memory.close()


@pytest_asyncio.fixture
async def live(slack_api, tmp_path):  # noqa: F811 - the imported fixture
    rig, memory = await live_rig(slack_api, tmp_path)
    yield rig
    await close(rig, memory)


def shown(api: SlackApiServer) -> list[tuple[str, str, str]]:
    """(username, thread_ts, visible text) of every message as it finally reads."""
    final: dict[str, tuple[str, str, str]] = {}
    for call in api.calls:
        if call.method == "chat.postMessage" and call.status == 200:
            final[call.response["ts"]] = (call.get("username", ""), call.get("thread_ts", ""), visible_text(call))
        elif call.method == "chat.update" and call.status == 200:
            user, thread, _ = final[call["ts"]]
            final[call["ts"]] = (user, thread, visible_text(call))
    return list(final.values())


async def test_a_named_persona_answers_in_the_thread_replacing_her_placeholder(live: Rig) -> None:
    event = mention_event("Sophia, why might sign-ups drop on Mondays?")
    await live.event(event)
    await live.settle()
    [placeholder] = live.api.posts()
    assert placeholder["username"] == "Sophia" and placeholder["thread_ts"] == event["ts"] and "thinking" in placeholder["text"]
    [(user, thread, text)] = shown(live.api)
    assert (user, thread) == ("Sophia", event["ts"]) and "Offline rehearsal" in text and "thinking" not in text


async def test_without_a_name_the_domain_router_chooses(live: Rig) -> None:
    await live.event(mention_event("how healthy is our sales pipeline before the campaign launch?"))
    await live.settle()
    assert shown(live.api)[0][0] == "Karen"


async def test_a_thread_reply_continues_the_conversation_and_unknown_threads_are_ignored(live: Rig) -> None:
    first = mention_event("karen, is the pricing page ready?")
    await live.event(first)
    await live.settle()
    await live.event(message_event("what about the enterprise tier?", thread_ts=first["ts"], user="U0BOB"))
    await live.event(message_event("unrelated thread", thread_ts="1500000000.000100"))
    await live.settle()
    answers = shown(live.api)
    assert len(answers) == 2 and all(thread == first["ts"] and user == "Karen" for user, thread, _ in answers)


async def test_an_investigation_runs_in_the_thread_of_its_root_post_and_buttons_steer_it(live: Rig) -> None:
    response, _ = await live.command("/investigate", "sophia why did sign-ups drop last week? data from the funnel")
    assert response.status == 200
    await live.settle()
    posts = live.api.posts()
    root = posts[0]
    assert "thread_ts" not in root.params and root["username"] == "Sophia"
    assert "Investigation" in visible_text(root) and "Cast" in visible_text(root)
    root_ts = root.response["ts"]
    assert all(p["thread_ts"] == root_ts for p in posts[1:])

    turns = [c for c in live.api.of("chat.update") if any(b["type"] == "actions" for b in c.blocks)]
    assert turns, "a structured turn with buttons"
    research = turns[0]
    assert "Evidence" in visible_text(research) and "Hypothesis" in visible_text(research)
    buttons = next(b for b in research.blocks if b["type"] == "actions")["elements"]
    inv_id = buttons[0]["value"]
    assert inv_id == "c0general-1" and {b["action_id"] for b in buttons} == {"orchestra_challenge", "orchestra_plan", "orchestra_close"}

    before = len(shown(live.api))
    click = {"message_ts": research["ts"], "thread_ts": root_ts, "text": research["text"], "blocks": research.blocks}
    await live.click("orchestra_challenge", inv_id, **click)
    await live.click("orchestra_challenge", inv_id, **click)  # a double click: one challenge
    await live.settle()
    after = shown(live.api)[before:]
    assert after and all(thread == root_ts for _, thread, _ in after)
    assert [user for user, _, text in after if "Challenges" in text] == ["Karen"]
    # the research turn reads as before, its buttons replaced by who asked for what
    [taken] = [c for c in live.api.of("chat.update") if c["ts"] == research["ts"] and c is not research]
    assert taken["text"] == research["text"]
    at = next(n for n, b in enumerate(research.blocks) if b["type"] == "actions")
    assert taken.blocks[:at] == research.blocks[:at] and taken.blocks[at + 1 :] == research.blocks[at + 1 :]
    assert taken.blocks[at] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "↪ Challenge requested by <@U0ALICE>"}]}

    later = [c for c in live.api.of("chat.update") if c["ts"] != research["ts"] and any(b["type"] == "actions" for b in c.blocks)]
    assert later, "a later turn with buttons"
    await live.click("orchestra_close", inv_id, message_ts=later[-1]["ts"], thread_ts=root_ts, text=later[-1]["text"], blocks=later[-1].blocks)
    await live.settle()
    assert "closed by <@U0ALICE>" in shown(live.api)[-1][2]


async def test_a_retry_after_a_restart_is_not_answered_again(slack_api, tmp_path) -> None:  # noqa: F811
    event = mention_event("sophia, what is our churn?")
    rig, memory = await live_rig(slack_api, tmp_path)
    await rig.event(event, event_id="Ev42")
    await close(rig, memory)
    answered = len(slack_api.calls)

    rig, memory = await live_rig(slack_api, tmp_path)  # a new process on the same database
    try:
        await rig.event(event, event_id="Ev42", retry_num=1)
        await rig.event(dict(event, type="message", channel_type="channel"), event_id="Ev43")  # its message twin
        await rig.settle()
        assert [c.method for c in slack_api.calls[answered:]] in ([], ["auth.test"])
    finally:
        await close(rig, memory)


async def test_an_empty_mention_gets_a_hint_and_an_unknown_persona_a_notice(live: Rig) -> None:
    empty = mention_event("")
    await live.event(empty)
    await live.event(mention_event("@bob can you check the logs?"))  # the engine reads "@name" as an address
    await live.settle()
    texts = [text for _, _, text in shown(live.api)]
    assert any("/investigate" in t and "Sophia" in t for t in texts)
    assert any("don't know a persona called “bob”" in t for t in texts)
    assert all(thread for _, thread, _ in shown(live.api))


async def test_a_huge_message_is_read_in_part_and_answered_within_slack_limits(live: Rig) -> None:
    huge = " ".join(f"line{i}" for i in range(8000))[:40_000]
    await live.event(mention_event(f"sophia {huge}"))
    await live.settle()
    texts = [text for _, _, text in shown(live.api)]
    assert any("40,000" in t or "characters" in t for t in texts)
    for call in live.api.calls:
        if call.method in ("chat.postMessage", "chat.update"):
            assert len(call["text"]) <= 3900 and len(call.blocks) <= 50


async def test_memory_lists_the_channel_and_forget_clears_it(live: Rig) -> None:
    await live.event(mention_event("cherry, what should we prioritise this quarter?"))
    await live.settle()
    _, listed = await live.command("/memory")
    await live.settle()
    text = live.responses(listed)[0]["text"]
    assert "what should we prioritise this quarter?" in text and "conversation" in text

    _, forgot = await live.command("/forget", user=ADMIN)
    _, again = await live.command("/memory")
    await live.settle()
    assert "1 thread" in live.responses(forgot)[0]["text"]
    assert "nothing" in live.responses(again)[0]["text"]
    assert not await live.engine.is_known_thread("slack", "T0TEAM", "C0GENERAL", live.api.posts()[0]["thread_ts"])


async def test_a_mention_of_the_bot_inside_a_thread_is_one_task(live: Rig) -> None:
    first = mention_event("sophia, look at the funnel data")
    await live.event(first)
    await live.settle()
    text = f"<@{BOT_USER}> karen what would you challenge?"
    as_message = message_event(text, thread_ts=first["ts"])
    as_mention = {k: v for k, v in dict(as_message, type="app_mention").items() if k != "channel_type"}
    await live.event(as_mention)
    await live.event(as_message)
    await live.settle()
    users = [user for user, _, _ in shown(live.api)]
    assert users == ["Sophia", "Karen"]
