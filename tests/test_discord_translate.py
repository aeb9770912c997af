"""discord.py messages and interactions → Tasks, who may start turns, and the adapter's texts.

The messages are real `discord.Message` objects, made by discord.py's own gateway parser
(`ConnectionState.parse_message_create`) from MESSAGE_CREATE payloads shaped as Discord sends
them, after a GUILD_CREATE: a real `discord.Client` that never connects, whose `dispatch` records
what the parser hands on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import discord
import pytest

from adapters.discord.translate import (
    FORGET_DM,
    FORGET_REFUSAL,
    REFUSAL,
    UNREADABLE,
    click_task,
    command_task,
    forget_text,
    from_person,
    memory_text,
    mentions_bot,
    message_task,
    place,
    strip_bot_mention,
    unreachable_text,
    usage_text,
    workspace_of,
)
from engine.memory.records import (
    ForgetResult,
    Phase,
    ThreadKind,
    ThreadStatus,
    ThreadSummary,
)
from engine.models import TaskKind

BOT = 1000
BOT_ROLE = 11
OTHER_ROLE = 12
GUILD = 10
CHANNEL = 20
THREAD = 30
DM = 40
ANN = 2
STAMP = "2026-01-01T00:00:00+00:00"


def _user(uid: int, name: str, **extra: Any) -> dict[str, Any]:
    return {"id": str(uid), "username": name, "discriminator": "0", "avatar": None, "global_name": None, **extra}


def _role(rid: int, name: str, **extra: Any) -> dict[str, Any]:
    return {"id": str(rid), "name": name, "permissions": "0", "position": rid - 10, "color": 0, "hoist": False,
            "managed": False, "mentionable": True, "flags": 0, **extra}


GUILD_CREATE: dict[str, Any] = {
    "id": str(GUILD), "name": "Acme", "owner_id": str(ANN), "unavailable": False, "large": False, "member_count": 2,
    "roles": [_role(GUILD, "@everyone"), _role(BOT_ROLE, "Orchestra", managed=True, tags={"bot_id": str(BOT)}),
              _role(OTHER_ROLE, "oncall")],
    "channels": [{"id": str(CHANNEL), "type": 0, "name": "payments", "position": 0, "guild_id": str(GUILD),
                  "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None}],
    "threads": [{"id": str(THREAD), "type": 11, "name": "Why do refunds fail?", "parent_id": str(CHANNEL),
                 "guild_id": str(GUILD), "owner_id": str(BOT), "message_count": 3, "member_count": 2,
                 "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "archive_timestamp": STAMP,
                                     "locked": False}}],
    "members": [], "emojis": [], "stickers": [], "features": [], "voice_states": [], "presences": [],
}


class Gateway(discord.Client):
    """A discord.py client fed gateway payloads by hand; `dispatch` keeps what it would emit."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default())
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        state = self._connection
        state.user = discord.ClientUser(state=state, data=_user(BOT, "Orchestra", bot=True))  # what READY sets
        state.parse_guild_create(GUILD_CREATE)

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        self.events.append((event, args))

    def message(self, content: str = "", *, mid: int = 500, channel: int = CHANNEL, guild: bool = True,
                author: dict[str, Any] | None = None, mentions: list[int] | None = None, roles: list[int] | None = None,
                **extra: Any) -> discord.Message:
        """A MESSAGE_CREATE through discord.py's parser; the Message it dispatches."""
        data: dict[str, Any] = {
            "id": str(mid), "channel_id": str(channel), "author": author or _user(ANN, "ann"), "content": content,
            "timestamp": STAMP, "edited_timestamp": None, "tts": False, "mention_everyone": "@everyone" in content,
            "mentions": [_user(u, f"user{u}", bot=u == BOT) for u in (mentions or [])],
            "mention_roles": [str(r) for r in (roles or [])], "attachments": [], "embeds": [], "pinned": False,
            "type": 0, "flags": 0, **extra,
        }
        if guild:
            data["guild_id"] = str(GUILD)
        self.events.clear()
        self._connection.parse_message_create(data)
        [(_, (message,))] = [e for e in self.events if e[0] == "message"]
        return message


@pytest.fixture()
def gw() -> Gateway:
    return Gateway()


# --- where a message is ---------------------------------------------------------------------


def test_a_top_level_mention_becomes_a_task_whose_thread_is_the_message_itself(gw: Gateway) -> None:
    m = gw.message(f"<@{BOT}> sophia why do refunds fail?", mentions=[BOT])
    assert from_person(m) and mentions_bot(m, BOT)
    assert place(m) == (str(CHANNEL), None)
    t = message_task(m, bot_id=BOT)
    assert (t.platform, t.workspace, t.channel, t.thread, t.user) == ("discord", str(GUILD), str(CHANNEL), "500", str(ANN))
    assert (t.text, t.event_id, t.message_id, t.reply_to, t.kind) == ("sophia why do refunds fail?", "message:500", "500", None, TaskKind.MESSAGE)


def test_a_mention_inside_a_thread_belongs_to_that_thread_in_its_parent_channel(gw: Gateway) -> None:
    m = gw.message(f"<@{BOT}> Karen: and the retries?", mid=501, channel=THREAD, mentions=[BOT])
    assert isinstance(m.channel, discord.Thread)
    assert place(m) == (str(CHANNEL), str(THREAD))
    t = message_task(m, bot_id=BOT)
    assert (t.channel, t.thread, t.text, t.message_id) == (str(CHANNEL), str(THREAD), "Karen: and the retries?", "501")


def test_a_dm_is_one_conversation_in_the_dm_workspace(gw: Gateway) -> None:
    m = gw.message("why do refunds fail?", mid=502, channel=DM, guild=False)
    assert isinstance(m.channel, discord.DMChannel) and m.guild is None
    assert not mentions_bot(m, BOT) and from_person(m)
    t = message_task(m, bot_id=BOT)
    assert (t.workspace, t.channel, t.thread, t.text) == ("dm", str(DM), str(DM), "why do refunds fail?")
    assert workspace_of(None) == "dm" and workspace_of(GUILD) == str(GUILD)


def test_a_reply_to_a_persona_post_names_the_message_it_answers(gw: Gateway) -> None:
    m = gw.message("are you sure?", mid=503, channel=THREAD, type=19,
                   message_reference={"message_id": "450", "channel_id": str(THREAD), "guild_id": str(GUILD)})
    assert from_person(m)
    t = message_task(m, bot_id=BOT)
    assert (t.reply_to, t.thread, t.text) == ("450", str(THREAD), "are you sure?")
    # A plain message has no reply_to, even when Discord attached a reference for another reason.
    assert message_task(gw.message("plain", mid=504, channel=THREAD), bot_id=BOT).reply_to is None


# --- who may start turns --------------------------------------------------------------------


def test_bots_webhooks_and_system_messages_never_start_turns(gw: Gateway) -> None:
    other_bot = gw.message(f"<@{BOT}> hello", mid=510, author=_user(77, "otherbot", bot=True), mentions=[BOT])
    ourselves = gw.message("Here is my answer", mid=511, channel=THREAD, author=_user(BOT, "Orchestra", bot=True))
    persona_post = gw.message(f"<@{BOT}> Sophia here", mid=512, channel=THREAD, webhook_id="900",
                              author=_user(900, "Sophia"), mentions=[BOT])  # our webhook, no bot flag
    thread_created = gw.message("Why do refunds fail?", mid=513, type=18)
    pinned = gw.message("", mid=514, type=6)
    system = gw.message("Welcome", mid=515, author=_user(643945264868098049, "Discord", system=True))
    for m in (other_bot, ourselves, persona_post, thread_created, pinned, system):
        assert not from_person(m), m
    assert from_person(gw.message("a person", mid=516))


# --- mentions -------------------------------------------------------------------------------


def test_only_the_bots_own_mentions_are_stripped_in_both_forms(gw: Gateway) -> None:
    m = gw.message(f"<@!{BOT}> ask <@{ANN}> and <@&{OTHER_ROLE}> about <#{CHANNEL}> <@{BOT}>",
                   mentions=[BOT, ANN], roles=[OTHER_ROLE])
    assert mentions_bot(m, BOT)
    assert message_task(m, bot_id=BOT).text == f"ask <@{ANN}> and <@&{OTHER_ROLE}> about <#{CHANNEL}>"
    assert strip_bot_mention(f"<@{BOT}1> hi", BOT) == f"<@{BOT}1> hi"  # another id that starts alike


def test_the_bots_managed_role_counts_as_a_mention_and_is_stripped(gw: Gateway) -> None:
    m = gw.message(f"<@&{BOT_ROLE}> cherry: hello", roles=[BOT_ROLE])
    assert mentions_bot(m, BOT)
    assert message_task(m, bot_id=BOT).text == "cherry: hello"
    other = gw.message(f"<@&{OTHER_ROLE}> hello", mid=520, roles=[OTHER_ROLE])
    assert not mentions_bot(other, BOT)


def test_an_empty_mention_gives_an_empty_text_for_the_engine_to_answer(gw: Gateway) -> None:
    m = gw.message(f"  <@{BOT}>  ", mentions=[BOT])
    t = message_task(m, bot_id=BOT)
    assert t.text == "" and t.event_id == "message:500"


def test_a_40000_character_message_reaches_the_task_whole(gw: Gateway) -> None:
    body = ("refunds fail after the retry window " * 1200)[:40_000]
    m = gw.message(f"<@{BOT}> {body}", mentions=[BOT])
    assert message_task(m, bot_id=BOT).text == body.strip()


def test_everyone_in_a_question_is_kept_as_the_person_wrote_it(gw: Gateway) -> None:
    # The person's words reach the engine as written; it is what the personas post that is neutralised.
    m = gw.message(f"<@{BOT}> why did @everyone get pinged? @here too", mentions=[BOT])
    assert message_task(m, bot_id=BOT).text == "why did @everyone get pinged? @here too"


def test_invisible_characters_stay_for_the_engine_and_hide_no_mention(gw: Gateway) -> None:
    m = gw.message(f"<@{BOT}>\u200b\u2060sophia\u00a0why?", mentions=[BOT])
    assert message_task(m, bot_id=BOT).text == "\u200b\u2060sophia\u00a0why?"
    # A mention with an invisible character inside is no mention: Discord does not parse it either.
    fake = gw.message(f"<@\u200b{BOT}> hi", mid=530)
    assert not mentions_bot(fake, BOT)
    assert strip_bot_mention(fake.content, BOT) == f"<@\u200b{BOT}> hi"


# --- commands and buttons -------------------------------------------------------------------


def test_a_slash_command_maps_its_place_and_interaction_id() -> None:
    top = command_task(TaskKind.INVESTIGATE, interaction_id=9001, guild_id=GUILD, channel_id=CHANNEL, parent_id=None,
                       user_id=ANN, text="  why do refunds fail?  ", persona=" Karen ")
    assert (top.workspace, top.channel, top.thread, top.user) == (str(GUILD), str(CHANNEL), None, str(ANN))
    assert (top.text, top.persona, top.event_id, top.kind) == ("why do refunds fail?", "karen", "interaction:9001", TaskKind.INVESTIGATE)
    inside = command_task(TaskKind.INVESTIGATE, interaction_id=9002, guild_id=GUILD, channel_id=THREAD, parent_id=CHANNEL,
                          user_id=ANN, text="x", persona=None)
    assert (inside.channel, inside.thread, inside.persona) == (str(CHANNEL), str(THREAD), None)
    dm = command_task(TaskKind.INVESTIGATE, interaction_id=9003, guild_id=None, channel_id=DM, parent_id=None,
                      user_id=ANN, text="x", persona="")
    assert (dm.workspace, dm.channel, dm.thread, dm.persona) == ("dm", str(DM), str(DM), None)


def test_a_double_click_is_one_event_and_each_button_its_own() -> None:
    def click(kind: TaskKind, user: int = ANN):
        return click_task(kind, message_id=700, guild_id=GUILD, channel_id=THREAD, parent_id=CHANNEL, user_id=user,
                          investigation_id="payments-1")

    first, again, someone_else = click(TaskKind.CHALLENGE), click(TaskKind.CHALLENGE), click(TaskKind.CHALLENGE, 3)
    assert first.event_id == again.event_id == someone_else.event_id == "click:700:challenge"
    assert click(TaskKind.PLAN).event_id == "click:700:plan"
    assert (first.channel, first.thread, first.message_id, first.kind, first.text) == (str(CHANNEL), str(THREAD), "700", TaskKind.CHALLENGE, "")


# --- the adapter's own words ----------------------------------------------------------------


def _summary(n: int, title: str = "Why do refunds fail?") -> ThreadSummary:
    return ThreadSummary(id=f"payments-{n}", kind=ThreadKind.INVESTIGATION, title=title, phase=Phase.DISCOVERY,
                         status=ThreadStatus.ACTIVE, lead="sophia", turns=3,
                         updated_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC))


def test_the_memory_list_fits_one_message_and_says_how_many_it_left_out() -> None:
    assert "remembers nothing" in memory_text([])
    text = memory_text([_summary(n) for n in range(200)])
    assert len(text) <= 2000
    assert text.startswith("**This channel remembers 200 thread(s):**")
    assert "• **Why do refunds fail?** (investigation, discovery, active, led by Sophia, 3 turn(s), <t:1767323040:f>) `payments-0`" in text
    assert "older one(s)." in text and text.endswith("An admin can clear it with `/forget`.")


def test_the_memory_list_shows_titles_as_text_that_pings_nobody() -> None:
    text = memory_text([_summary(1, "@everyone **look** <@&12> at [bank.com](http://evil)")])
    assert "@everyone" not in text and "<@&12>" not in text and "**look**" not in text
    assert "http://evil" in text  # the link's real target is shown


def test_the_other_texts_name_the_command_and_the_settings() -> None:
    assert "/investigate" in usage_text() and "persona:" in usage_text()
    assert "ORCHESTRA_ALLOWED_CHANNELS" in REFUSAL and "ORCHESTRA_ALLOWED_USERS" in REFUSAL
    assert "Manage Server" in FORGET_REFUSAL and "DISCORD_ADMIN_ROLES" in FORGET_REFUSAL and "/forget" in FORGET_REFUSAL
    assert "send it again" in UNREADABLE and "/forget" in FORGET_DM
    assert "Manage Webhooks" in unreachable_text("Send Messages")
    assert forget_text(ForgetResult(threads=0, turns=0, tasks=0)) == "There was nothing to forget in this channel."
    assert "(2 thread(s), 5 turn(s), 7 task(s))" in forget_text(ForgetResult(threads=2, turns=5, tasks=7))
    for text in (usage_text(), REFUSAL, FORGET_REFUSAL, UNREADABLE, memory_text([_summary(1)])):
        assert len(text) <= 2000
