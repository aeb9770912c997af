"""discord.py objects → `Task`s, who may start turns, and the adapter's own short texts.

Pure functions (no network). The mapping (see the Discord contract):
- workspace = the guild id, "dm" in a DM;
- channel = the text channel (a thread's parent; the DM channel in a DM);
- thread = the thread's id inside a thread; the message's own id for a top-level mention (the
  outbox later creates the thread from that message, and Discord gives it the same id); the DM
  channel's id in a DM (a DM is one long conversation: DMs have no threads);
- event ids: `message:{id}`, `interaction:{id}`, `click:{message id}:{kind}`, the same for every
  redelivery (a resumed gateway replays events), so the engine's SQLite dedupe runs each once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

import discord

from adapters.safe_text import WORD_JOINER, neutral
from engine.memory.records import ForgetResult, ThreadSummary
from engine.models import Task, TaskKind

PLATFORM = "discord"
DM_WORKSPACE = "dm"
MAX_CONTENT = 2000

#: Message types a person makes that count as a message to us; the rest (thread created,
#: pins, joins, boosts, command responses) are Discord's own notices.
PERSON_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


def workspace_of(guild_id: int | None) -> str:
    return str(guild_id) if guild_id else DM_WORKSPACE


def _is_dm(channel: object, guild_id: int | None) -> bool:
    return guild_id is None or isinstance(channel, (discord.DMChannel, discord.GroupChannel))


def place(message: discord.Message) -> tuple[str, str | None]:
    """(channel, thread) of a message; thread None for a top-level message in a server channel.

    A channel discord.py has not cached (a `PartialMessageable`) counts as a top-level channel;
    the listeners first ask Discord what such a channel is (a thread never seen, or one archived,
    which discord.py drops from its cache), so a thread arrives here as a `discord.Thread`.
    """
    channel = message.channel
    if _is_dm(channel, message.guild.id if message.guild else None):
        return str(channel.id), str(channel.id)
    if isinstance(channel, discord.Thread):
        return str(channel.parent_id), str(channel.id)
    return str(channel.id), None


def from_person(message: discord.Message) -> bool:
    """False for bots, webhooks (our own persona posts included) and Discord's system messages."""
    if message.webhook_id is not None or message.author.bot or getattr(message.author, "system", False):
        return False
    return message.type in PERSON_TYPES


def _bot_role_ids(message: discord.Message, bot_id: int) -> list[int]:
    """The ids of mentioned roles that are the bot's own managed role (what Discord's mention
    autocomplete sometimes picks instead of the bot user)."""
    return [r.id for r in message.role_mentions if r.tags is not None and r.tags.bot_id == bot_id]


def mentions_bot(message: discord.Message, bot_id: int) -> bool:
    """The message mentions the bot: as a user (`<@id>`, `<@!id>`) or through its managed role."""
    if any(user.id == bot_id for user in message.mentions) or bot_id in message.raw_mentions:
        return True
    return bool(_bot_role_ids(message, bot_id))


def strip_bot_mention(text: str, bot_id: int, *, role_ids: Iterable[int] = ()) -> str:
    """`text` without the bot's mentions (user, and the given managed role ids); the engine reads
    the persona name after it. Every other mention stays as written."""
    text = re.sub(rf"<@!?{int(bot_id)}>", " ", text or "")
    for role in role_ids:
        text = re.sub(rf"<@&{int(role)}>", " ", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def message_task(message: discord.Message, *, bot_id: int) -> Task:
    channel, thread = place(message)
    reference = message.reference
    reply_to = None
    if message.type is discord.MessageType.reply and reference is not None and reference.message_id:
        reply_to = str(reference.message_id)
    return Task(
        platform=PLATFORM,
        workspace=workspace_of(message.guild.id if message.guild else None),
        channel=channel,
        thread=thread or str(message.id),
        user=str(message.author.id),
        text=strip_bot_mention(message.content, bot_id, role_ids=_bot_role_ids(message, bot_id)),
        event_id=f"message:{message.id}",
        kind=TaskKind.MESSAGE,
        reply_to=reply_to,
        message_id=str(message.id),
    )


def _where(guild_id: int | None, channel_id: int, parent_id: int | None) -> tuple[str, str | None]:
    """(channel, thread) of an interaction: in a thread its parent and itself; in a DM the DM
    channel twice; else the channel and no thread."""
    if guild_id is None:
        return str(channel_id), str(channel_id)
    if parent_id:
        return str(parent_id), str(channel_id)
    return str(channel_id), None


def command_task(
    kind: TaskKind,
    *,
    interaction_id: int,
    guild_id: int | None,
    channel_id: int,
    parent_id: int | None,
    user_id: int,
    text: str,
    persona: str | None,
) -> Task:
    """A slash command (`/investigate`); `parent_id` is the channel's parent when run in a thread."""
    channel, thread = _where(guild_id, channel_id, parent_id)
    return Task(
        platform=PLATFORM,
        workspace=workspace_of(guild_id),
        channel=channel,
        thread=thread,
        user=str(user_id),
        text=(text or "").strip(),
        event_id=f"interaction:{interaction_id}",
        kind=kind,
        persona=persona.strip().lower() if persona and persona.strip() else None,
    )


def click_task(
    kind: TaskKind,
    *,
    message_id: int,
    guild_id: int | None,
    channel_id: int,
    parent_id: int | None,
    user_id: int,
    investigation_id: str,
) -> Task:
    """A button click on one of our posts. The event id names the message and the button, not
    the click: a double click (or two people) makes one task. The engine finds the investigation
    by its thread; `investigation_id` is checked by the caller against the button's own id."""
    channel, thread = _where(guild_id, channel_id, parent_id)
    return Task(
        platform=PLATFORM,
        workspace=workspace_of(guild_id),
        channel=channel,
        thread=thread or str(message_id),
        user=str(user_id),
        text="",
        event_id=f"click:{message_id}:{TaskKind(kind).value}",
        kind=kind,
        message_id=str(message_id),
    )


# --- the adapter's own words ----------------------------------------------------------------


def usage_text() -> str:
    return (
        "**Start an investigation:** `/investigate problem: what should we look into?`\n"
        "For example `/investigate problem: why did sign-ups drop last week?`, or pick who leads "
        "with `persona:` (`/investigate persona: Karen problem: is the new pricing page ready?`).\n"
        "The personas post in a thread; reply there to add evidence. You can also mention me with "
        "a question, or write to me directly."
    )


def crew_usage_text() -> str:
    return (
        "**Start a crew:** `/crew text: what should the crew do?`, with `domain:` and `complexity:` if you "
        "like (low: one specialist, medium: a lead and a support, high: three agents), and `persona:` "
        "to pick who leads it.\n"
        "For example `/crew text: plan the Q3 pipeline review domain: sales complexity: high`.\n"
        "To hand an investigation's plan to a crew, press **Hand to a crew** under the plan, or run "
        "`/crew` without text in the investigation's thread."
    )


def crew_error_text(problem: str) -> str:
    """A `/crew` whose options could not be read: what was wrong, and how to ask. Nothing started."""
    return f"{problem} Nothing was started.\n\n{crew_usage_text()}"


REFUSAL = (
    "Sorry, Orchestra isn't enabled for you here. A server admin can allow this channel or "
    "person (ORCHESTRA_ALLOWED_CHANNELS / ORCHESTRA_ALLOWED_USERS, with Discord ids)."
)

UNREADABLE = (
    "Sorry, I couldn't read that message (it holds characters I can't store). "
    "Please send it again, retyped rather than pasted."
)

NOT_TAKEN = "Sorry, I couldn't take that just now. Nothing was started; please try again in a moment."

FORGET_REFUSAL = (
    "Sorry, only admins can use `/forget`: members with the **Manage Server** permission or a "
    "role listed in DISCORD_ADMIN_ROLES. Ask one of them."
)

FORGET_DM = "There is nothing to `/forget` here: `/forget` clears a server channel's memory."


def unreachable_text(missing: str) -> str:
    """When Discord refuses a post: which permission to give, and where."""
    return (
        f"I can't post here (missing permission: **{neutral(missing)}**). Give my role **View Channel**, "
        "**Send Messages**, **Send Messages in Threads**, **Create Public Threads**, **Embed Links** "
        "and **Manage Webhooks** in this channel, then try again."
    )


def _when(dt: datetime) -> str:
    """A Discord timestamp: shown in the reader's own time zone."""
    return f"<t:{int(dt.timestamp())}:f>"


def _title(text: str) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= 100 else text[:99] + "…"
    # Shown as written: markdown escaped, and `<@…>` / `<#…>` broken by a word joiner.
    return re.sub(r"<(?=[@#])", "<" + WORD_JOINER, discord.utils.escape_markdown(neutral(text)))


def memory_text(summaries: list[ThreadSummary]) -> str:
    """What this channel remembers, newest first, within one message (2,000 characters)."""
    if not summaries:
        return "This channel remembers nothing yet. Mention me or run `/investigate` to start."
    head = f"**This channel remembers {len(summaries)} thread(s):**"
    tail = "An admin can clear it with `/forget`."
    lines: list[str] = []
    budget = MAX_CONTENT - len(head) - len(tail) - 60  # room for the "…and N older" line
    for s in summaries:
        lead = f", led by {neutral(s.lead.capitalize())}" if s.lead else ""
        line = (
            f"• **{_title(s.title)}** ({s.kind.value}, {s.phase.value}, {s.status.value}{lead}, "
            f"{s.turns} turn(s), {_when(s.updated_at)}) `{s.id}`"
        )
        if len(line) + 1 > budget:
            break
        lines.append(line)
        budget -= len(line) + 1
    rest = len(summaries) - len(lines)
    more = [f"…and {rest} older one(s)."] if rest else []
    return "\n".join([head, *lines, *more, tail])


def forget_text(result: ForgetResult) -> str:
    if not (result.threads or result.turns or result.tasks):
        return "There was nothing to forget in this channel."
    return (
        f"Done: this channel's memory is gone ({result.threads} thread(s), {result.turns} turn(s), "
        f"{result.tasks} task(s)). The personas start fresh here."
    )
