"""Reply → Discord messages: embeds in the persona's colour, split within Discord's limits.

Pure functions, no network: the outbox sends what this returns. Nothing is ever cut away: a long
text is split across embed descriptions and fields, then across embeds, then across messages
(each a `DiscordPost`, posted one after another in the same thread). Every post carries its part
key in the footer of its last embed, because Discord messages have no metadata: that is how the
outbox recognises its own posts after a crash (`key_of`).

All persona text goes into embeds, which never notify anyone; `content` holds only the asker's
mention (the one person we may notify) and, when we post as the bot, the persona's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import discord

from adapters.discord.sections import Prose, Section, sections_of
from adapters.safe_text import WORD_JOINER, neutral
from engine.models import Action, Reply, ReplyKind, TaskKind, Voice
from engine.personas.model import color_key

PLATFORM = "discord"
#: The replies that speak to the person who asked, and so mention (notify) them once, on their
#: first message: the root of the investigation they started, an answer, a question for them, a
#: failure. Investigation turns and notices notify nobody: a thread of pings gets muted.
NOTIFY_ASKER = frozenset({ReplyKind.ROOT, ReplyKind.ANSWER, ReplyKind.QUESTION, ReplyKind.ERROR})
MODE_LABELS = {"researcher": "Research", "critic": "Critique", "planner": "Plan", "crew-plan": "Crew plan",
               "crew-progress": "Crew at work", "crew-result": "Crew result", "crew-review": "Crew review"}

# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits)
MAX_CONTENT = 2000
MAX_DESCRIPTION = 4096
MAX_TITLE = 256
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FIELDS = 25
MAX_FOOTER = 2048
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000  # over every embed of one message
MAX_BUTTON_LABEL = 80
MAX_CUSTOM_ID = 100
#: Below this much room left in a message, a long text starts a new message rather than
#: leaving a sliver behind.
MIN_PIECE = 400

#: Persona colour names (engine/personas/model.py COLORS) → Discord colours.
COLOURS: dict[str, int] = {
    "black": 0x23272A, "red": 0xE74C3C, "green": 0x2ECC71, "yellow": 0xFEE75C, "blue": 0x3498DB,
    "magenta": 0xE91E63, "cyan": 0x1ABC9C, "white": 0xFFFFFF, "gray": 0x95A5A6, "grey": 0x95A5A6,
    "bright_red": 0xED4245, "bright_green": 0x57F287, "bright_yellow": 0xFFFF55, "bright_blue": 0x5865F2,
    "bright_magenta": 0xEB459E, "bright_cyan": 0x55FFFF, "bright_white": 0xF8F8F8, "orange": 0xE67E22,
    "pink": 0xFF8FC8, "purple": 0x9B59B6,
}

ACTION_PREFIX = "orchestra"
ACTION_KINDS = (TaskKind.CHALLENGE, TaskKind.PLAN, TaskKind.CLOSE, TaskKind.CREW)
ACTION_CUSTOM_ID_RE = re.compile(rf"{ACTION_PREFIX}:(?P<kind>challenge|plan|close|crew):(?P<investigation>[^\s:]{{1,80}})")
BUTTON_STYLES = {TaskKind.CHALLENGE: discord.ButtonStyle.danger, TaskKind.PLAN: discord.ButtonStyle.primary,
                 TaskKind.CLOSE: discord.ButtonStyle.secondary, TaskKind.CREW: discord.ButtonStyle.success}

#: A Discord user id (a snowflake): the only mention we ever write is of one person.
USER_ID_RE = re.compile(r"\d{1,20}")
#: What an engine key looks like ("turn:payments-1:3", "root:payments-1", "wait:7:1:sophia#2"):
#: `key_of` only reads a footer's last segment as a key when it has this shape.
KEY_RE = re.compile(r"[A-Za-z][\w.-]*:\S+")
FOOTER_SEP = " · "


@dataclass(frozen=True)
class DiscordPost:
    """One message to send: content, embeds, buttons (the last part only) and its part key."""

    content: str  # "" allowed; <= 2000 chars
    embeds: list[discord.Embed]  # <= 10, <= 6000 chars in all, description <= 4096
    actions: list[Action]  # buttons, on the LAST part only
    key: str  # this part's key: part_key(reply.key, i); "" when keyless


# --- small pieces ---------------------------------------------------------------------------


def size(text: str) -> int:
    """Length as Discord may count it (UTF-16 code units): never less than `len`, so safe."""
    return len(text.encode("utf-16-le")) // 2


def part_key(key: str, index: int) -> str:
    """The key of part `index` (0-based) of a split reply: the first part keeps the reply's key."""
    if not key or index == 0:
        return key
    return f"{key}#{index + 1}"


def colour_of(voice: Voice) -> discord.Colour:
    return discord.Colour(COLOURS.get(color_key(voice.color), COLOURS["white"]))


def plain(text: str) -> str:
    """Text for `content`, where Discord parses mentions: `neutral`, and `<@…>`, `<@&…>`, `<#…>`
    broken by a word joiner, so that it is shown as written (allowed mentions notify nobody
    anyway; this keeps it from even looking like a ping)."""
    return re.sub(r"<(?=[@#])", "<" + WORD_JOINER, neutral(text))


def mention(user_id: str) -> str:
    """`<@id>` for a real user id; anything else is shown as text."""
    return f"<@{user_id}>" if USER_ID_RE.fullmatch(user_id or "") else plain(user_id or "")


def taken_line(label: str, user_id: str) -> str:
    """The line that replaces a message's buttons once one of them was clicked."""
    return f"↪ {plain(label.strip())} requested by {mention(user_id)}"


def action_custom_id(kind: TaskKind, investigation_id: str) -> str:
    """`orchestra:challenge:payments-1`: fixed per button, so it still works after a restart.
    ValueError for an id that would not fit Discord's 100 characters or the pattern."""
    custom_id = f"{ACTION_PREFIX}:{TaskKind(kind).value}:{investigation_id}"
    if len(custom_id) > MAX_CUSTOM_ID or not ACTION_CUSTOM_ID_RE.fullmatch(custom_id):
        raise ValueError(f"no button id for investigation {investigation_id[:120]!r}")
    return custom_id


def action_view(actions: list[Action]) -> discord.ui.View | None:
    """A persistent view (no timeout), one button per action; None without actions."""
    buttons = []
    for action in actions:
        if action.kind not in ACTION_KINDS:
            continue
        try:
            custom_id = action_custom_id(action.kind, action.investigation_id)
        except ValueError:
            continue  # an id no button can carry: the thread's replies still work
        label = neutral(action.label).strip() or action.kind.value.capitalize()
        if len(label) > MAX_BUTTON_LABEL:
            label = label[: MAX_BUTTON_LABEL - 1] + "…"  # a button label, not the persona's words
        buttons.append(discord.ui.Button(label=label, custom_id=custom_id, style=BUTTON_STYLES[action.kind]))
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for button in buttons[:25]:
        view.add_item(button)
    return view


def cut(text: str, limit: int) -> tuple[str, str]:
    """(head, rest) with head + rest == text and size(head) <= limit: at a paragraph break,
    then a line break, then a space, else hard (never inside a surrogate pair's count)."""
    if size(text) <= limit:
        return text, ""
    window = text[:limit]
    while size(window) > limit:  # characters outside the BMP count twice
        window = window[:-1]
    for sep in ("\n\n", "\n", " "):
        at = window.rfind(sep)
        if at >= len(window) // 3:
            return text[: at + len(sep)], text[at + len(sep):]
    return window, text[len(window):]


def pieces(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` (Discord's count), split where `cut` splits, nothing lost."""
    out = []
    while text:
        head, text = cut(text, limit)
        out.append(head)
    return out



# --- packing --------------------------------------------------------------------------------


def _label(voice: Voice, mode: str | None = None, investigation_id: str | None = None) -> str:
    parts = [f"{voice.emoji_char} {voice.display_name}".strip()]
    if mode:
        parts.append(MODE_LABELS.get(mode, mode))
    if investigation_id:
        parts.append(investigation_id)
    return FOOTER_SEP.join(parts)


def footer_text(label: str, key: str, part: str = "") -> str:
    """The last embed's footer: what posted it, which part, and the key `key_of` reads back."""
    tail = FOOTER_SEP.join(p for p in (part, key) if p)
    room = MAX_FOOTER - size(tail) - size(FOOTER_SEP)
    if size(label) > room:
        label = label[: max(room - 1, 0)] + "…"
    return FOOTER_SEP.join(p for p in (label, tail) if p)


class _Packer:
    """Fills embeds with sections, in order, within every per-embed and per-message limit."""

    def __init__(self, colour: discord.Colour, reserve: int):
        self.colour = colour
        self.reserve = reserve  # the footer every message's last embed will carry
        self.messages: list[list[discord.Embed]] = [[]]
        self.used = 0

    def room(self) -> int:
        return MAX_EMBED_TOTAL - self.reserve - self.used

    def new_message(self) -> None:
        self.messages.append([])
        self.used = 0

    def new_embed(self) -> discord.Embed:
        if len(self.messages[-1]) >= MAX_EMBEDS:
            self.new_message()
        embed = discord.Embed(colour=self.colour)
        self.messages[-1].append(embed)
        return embed

    def current(self) -> discord.Embed | None:
        return self.messages[-1][-1] if self.messages[-1] else None

    def title(self, title: str) -> None:
        self.new_embed().title = title
        self.used += size(title)

    def prose(self, text: str) -> None:
        while text:
            if self.room() < min(size(text), MIN_PIECE):
                self.new_message()
            head, text = cut(text, min(MAX_DESCRIPTION, self.room()))
            if not head.strip():
                continue  # Discord refuses a blank description; blank space says nothing
            embed = self.current()
            if embed is None or embed.description or embed.fields:
                embed = self.new_embed()
            embed.description = head
            self.used += size(head)

    def field(self, name: str, value: str, inline: bool) -> None:
        if size(name) > MAX_FIELD_NAME:  # a model-made name (a phase's): all of it in the value
            value = f"**{name}**\n{value}"
            name = name[: MAX_FIELD_NAME - 12] + "…"
        first = True
        while value:
            label = name if first else f"{name[: MAX_FIELD_NAME - 12]} (continued)"
            if self.room() - size(label) < min(size(value), MIN_PIECE):
                self.new_message()
            embed = self.current()
            if embed is None or len(embed.fields) >= MAX_FIELDS:
                embed = self.new_embed()
            head, value = cut(value, min(MAX_FIELD_VALUE, self.room() - size(label)))
            if head.strip():
                embed.add_field(name=label, value=head, inline=inline and not value)
                self.used += size(label) + size(head)
                first = False


def _joined(sections: list[Section]) -> list[Section]:
    """Neighbouring prose as one text (a note and the answer under it share a description)."""
    out: list[Section] = []
    for section in sections:
        if isinstance(section, Prose) and out and isinstance(out[-1], Prose):
            out[-1] = Prose(out[-1].text + section.text)
        else:
            out.append(section)
    return out


def render_reply(reply: Reply, *, as_webhook: bool) -> list[DiscordPost]:
    """The messages to post for one reply, in order; buttons on the last one only."""
    title, sections = sections_of(reply)
    if title and size(title) > MAX_TITLE:
        sections.insert(0, Prose(f"**{title}**\n"))  # the whole title, then a short one on top
        title = title[: MAX_TITLE - 2] + "…"
    label = _label(reply.voice, reply.mode, reply.investigation_id)
    longest_key = part_key(reply.key, 98)
    packer = _Packer(colour_of(reply.voice), reserve=size(footer_text(label, longest_key, "99/99")))
    if title:
        packer.title(title)
    for section in _joined(sections):
        if isinstance(section, Prose):
            packer.prose(section.text)
        else:
            packer.field(section.name, section.value, section.inline)
    groups = [g for g in packer.messages if g] or [[discord.Embed(colour=colour_of(reply.voice), description="…")]]
    total = len(groups)
    posts = []
    for i, embeds in enumerate(groups):
        key = part_key(reply.key, i)
        embeds[-1].set_footer(text=footer_text(label, key, f"{i + 1}/{total}" if total > 1 else ""))
        posts.append(DiscordPost(
            content=_content(reply.voice, reply.asker if i == 0 and reply.kind in NOTIFY_ASKER else None,
                             as_webhook=as_webhook, continued=i > 0),
            embeds=embeds,
            actions=list(reply.actions) if i == total - 1 else [],
            key=key,
        ))
    return posts


def _content(voice: Voice, asker: str | None, *, as_webhook: bool, continued: bool = False) -> str:
    parts = []
    if asker and USER_ID_RE.fullmatch(asker):
        parts.append(f"<@{asker}>")
    if not as_webhook:  # posted under the bot's own name: say who speaks
        name = f"**{plain(voice.display_name)}** {voice.emoji_char}".strip()
        parts.append(f"{name} (continued)" if continued else name)
    content = " ".join(parts)
    return content if size(content) <= MAX_CONTENT else content[: MAX_CONTENT - 1] + "…"


def render_placeholder(voice: Voice, key: str, *, as_webhook: bool) -> DiscordPost:
    """The "thinking…" message her next post replaces (by editing it)."""
    embed = discord.Embed(colour=colour_of(voice), description=f"*{neutral(voice.display_name)} is thinking…*")
    embed.set_footer(text=footer_text(_label(voice), key))
    return DiscordPost(content=_content(voice, None, as_webhook=as_webhook), embeds=[embed], actions=[], key=key)


def key_of(message: discord.Message) -> str | None:
    """The part key a message we posted carries in its last embed's footer; None without one."""
    for embed in reversed(getattr(message, "embeds", None) or []):
        text = embed.footer.text if embed.footer else None
        if text:
            last = text.rsplit(FOOTER_SEP, 1)[-1]
            return last if KEY_RE.fullmatch(last) else None
    return None
