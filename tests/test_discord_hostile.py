"""Bad input through Discord, end to end (the real adapter, the local Discord, the real engine):
an empty mention, an unknown persona, a 40,000-character message, `@everyone` in the question
and in the answer, a bot's message. Nothing is lost, nobody is pinged, no post breaks a limit."""

from __future__ import annotations

from tests.servers.discord_api import DiscordServer
from tests.test_discord import EDIT, EXECUTE, Rig, executions, rig, task_count  # noqa: F401 - fixture

pytest_plugins = ["tests.servers.fixtures"]


def sent(server: DiscordServer) -> list:
    """Every post and edit we tried (failed ones too)."""
    return server.of(EXECUTE, ok_only=False) + server.of(EDIT, ok_only=False) + server.of(
        "POST /channels/{channel_id}/messages", ok_only=False)


def texts(server: DiscordServer) -> list[str]:
    out = []
    for r in sent(server):
        body = r.json or {}
        out.append(body.get("content") or "")
        for e in body.get("embeds") or []:
            out += [e.get("description") or "", e.get("title") or ""]
            out += [f.get("value") or "" for f in e.get("fields") or []]
    return out


async def test_an_empty_mention_gets_the_hint(rig: Rig) -> None:  # noqa: F811 - the imported fixture
    s = rig.server
    m = await s.mention("")
    await rig.settle()
    assert task_count(rig) == 1
    assert any("Ask me something" in t for t in texts(s))
    assert all(p.query.get("thread_id") == m["id"] for p in executions(s))


async def test_an_unknown_persona_is_named_and_someone_answers(rig: Rig) -> None:  # noqa: F811 - the imported fixture
    s = rig.server
    await s.mention("@zelda what is our churn?")  # "@name" after the mention: the engine's form
    await rig.settle()
    assert any("know a persona called" in t and "zelda" in t for t in texts(s))


async def test_a_40000_character_message_is_read_in_part_and_no_post_breaks_a_limit(rig: Rig) -> None:  # noqa: F811 - the imported fixture
    s = rig.server
    await s.mention("sophia " + "why is this so long? " * 1900)
    await rig.settle()
    assert sent(s) and all(r.status < 300 for r in sent(s))  # the local Discord answers 400 past a limit
    assert any("characters; I read the first" in t for t in texts(s))


async def test_everyone_in_the_question_and_the_answer_notifies_nobody_but_the_asker(rig: Rig) -> None:  # noqa: F811 - the imported fixture
    s = rig.server
    await s.mention("sophia @everyone @here <@&123> why did <@999> break prod?")
    await rig.settle()
    assert sent(s)
    for r in sent(s):
        am = r.json["allowed_mentions"]
        assert am["parse"] == [] and not am.get("roles") and not am.get("replied_user")
        assert set(map(str, am.get("users") or [])) <= {str(s.alice["id"])}
    assert not any("@everyone" in t or "@here" in t for t in texts(s))  # shown with a word joiner


async def test_a_bots_mention_is_never_a_turn(rig: Rig) -> None:  # noqa: F811 - the imported fixture
    s = rig.server
    await s.bot_message(f"<@{s.bot_id}> sophia do something")
    await rig.settle()
    assert task_count(rig) == 0 and not sent(s)
