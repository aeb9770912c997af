"""How a reply looks in a terminal: each persona's name in her own colour, with her emoji.

Colour follows the usual conventions: on when stdout is a terminal, off when it is not or when
NO_COLOR is set, and on regardless when FORCE_COLOR is set (CI logs, tests, `less -R`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TextIO

from engine.models import Reply, ReplyKind, TaskKind, Voice

_CODES = {
    "black": "30", "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35",
    "cyan": "36", "white": "37", "gray": "90", "grey": "90",
    "bright_red": "91", "bright_green": "92", "bright_yellow": "93", "bright_blue": "94",
    "bright_magenta": "95", "bright_cyan": "96", "bright_white": "97",
    "orange": "38;5;208", "pink": "38;5;205", "purple": "38;5;135",
}

#: The terminal command that does what a Slack or Discord button does.
ACTION_COMMANDS = {TaskKind.CHALLENGE: "/challenge", TaskKind.PLAN: "/plan", TaskKind.CLOSE: "/close"}

INDENT = "   "


def color_enabled(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    if env.get("NO_COLOR", ""):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Style:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and code else text

    def color(self, name: str, text: str, *, bold: bool = True) -> str:
        code = _CODES.get(name.strip().lower().replace(" ", "_").replace("-", "_"), "")
        return self._wrap(f"1;{code}" if bold and code else code or ("1" if bold else ""), text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def name(self, voice: Voice) -> str:
        """'🔬 Sophia', the name in her colour."""
        emoji = f"{voice.emoji_char} " if voice.emoji_char else ""
        return emoji + self.color(voice.color, voice.display_name)


def _tag(reply: Reply) -> str:
    if reply.kind == ReplyKind.TURN and reply.title:
        # the heading is "Sophia · researcher · confidence medium": the name is shown already
        return reply.title.split(" · ", 1)[1] if " · " in reply.title else reply.title
    if reply.kind == ReplyKind.ROOT:
        return f"investigation {reply.investigation_id}" if reply.investigation_id else "investigation"
    return {ReplyKind.ANSWER: "", ReplyKind.QUESTION: "asks you", ReplyKind.ERROR: "problem"}.get(reply.kind, reply.kind.value)


def render_reply(reply: Reply, style: Style, *, channel: str | None = None) -> str:
    """A header line with the persona's name, then the text, indented. Ends with a blank line."""
    where = f"#{reply.channel} " if channel is not None and reply.channel != channel else ""
    tag = _tag(reply)
    header = style.dim(where) + style.name(reply.voice) + (style.dim(f" · {tag}") if tag else "")
    lines = reply.text.splitlines() or [""]
    if reply.kind == ReplyKind.TURN and reply.title:
        lines = [line for line in lines if line.strip() != reply.title.strip()]
    body = "\n".join(INDENT + line if line else "" for line in lines)
    out = f"{header}\n{body}"
    commands = [ACTION_COMMANDS[a.kind] for a in reply.actions if a.kind in ACTION_COMMANDS]
    if commands:
        out += "\n" + style.dim(f"{INDENT}→ {' · '.join(commands)} · or reply to add evidence")
    return out + "\n"


def render_working(voice: Voice, style: Style) -> str:
    return style.dim(f"{voice.emoji_char} {voice.display_name} is thinking…".strip())
