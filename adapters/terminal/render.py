"""How a reply looks in a terminal: each persona's name in her own colour, with her emoji.

Colour follows the usual conventions: on when stdout is a terminal, off when it is not or when
NO_COLOR is set, and on regardless when FORCE_COLOR is set (CI logs, tests, `less -R`).

Text is wrapped to the terminal's width at word boundaries, continuation lines keeping the
persona's indent (and a bullet's hanging indent), so a paragraph never runs into column 0
mid-word. See `terminal_width` for when wrapping applies.
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
import unicodedata
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
ACTION_COMMANDS = {TaskKind.CHALLENGE: "/challenge", TaskKind.PLAN: "/plan", TaskKind.CLOSE: "/close",
                   TaskKind.CREW: "/crew plan"}

INDENT = "   "

#: Below this many columns wrapping does more harm than good: leave lines to the terminal.
MIN_WIDTH = 20

_BULLET = re.compile(r"^(\s*)((?:[-*•·→]|\d{1,3}[.)])\s+)?")


def terminal_width(stream: TextIO, environ: Mapping[str, str] | None = None) -> int | None:
    """The width to wrap to, or None for no wrapping.

    A terminal: its current width (`shutil.get_terminal_size`, which lets COLUMNS override it),
    asked on every post so a resized window is followed. Not a terminal (a pipe, a file):
    COLUMNS when it is set to a number, else None, because whatever reads a pipe (a file, `grep`,
    another program) is better served by the lines as written than by hard line breaks.
    """
    env = os.environ if environ is None else environ
    columns = env.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return max(int(columns), MIN_WIDTH)
    try:
        if not stream.isatty():
            return None
        return max(os.get_terminal_size(stream.fileno()).columns or shutil.get_terminal_size().columns, MIN_WIDTH)
    except (AttributeError, ValueError, OSError):
        return None


def display_width(text: str) -> int:
    """Columns `text` takes: East Asian wide characters and most emoji take two."""
    return sum(
        0 if unicodedata.combining(c) or c in "\u200d\ufe0f" else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def wrap_line(line: str, width: int | None, indent: str = "", hanging: str | None = None) -> list[str]:
    """`indent + line`, wrapped to `width` columns at spaces; continuation lines get `hanging`.

    `hanging` defaults to `indent` plus the line's own leading space and bullet ("• ", "- ",
    "2. "), so a wrapped bullet lines up under its text. Words longer than a line (URLs, paths)
    are never split: they overflow and the terminal shows them whole.
    """
    if not line.strip():
        return [""]
    if width is None or display_width(indent + line) <= width:
        return [indent + line]
    if hanging is None:
        m = _BULLET.match(line)
        hanging = indent + " " * (len(m.group(1)) + len(m.group(2) or ""))
    target = width
    while True:
        lines = textwrap.wrap(
            line, width=target, initial_indent=indent, subsequent_indent=hanging,
            break_long_words=False, break_on_hyphens=False, drop_whitespace=True,
        )
        # wide characters (emoji, CJK) take two columns where textwrap counts one: narrow the
        # target until they fit; a line holding one long word (a URL) is left to overflow
        over = max((display_width(w) - width for w in lines if " " in w.strip()), default=0)
        if over <= 0 or target - over < len(hanging) + MIN_WIDTH // 2:
            return lines or [indent + line]
        target -= over


def wrap_text(text: str, width: int | None, indent: str = "") -> str:
    """Every line of `text` wrapped with `wrap_line`."""
    return "\n".join(w for line in text.splitlines() for w in wrap_line(line, width, indent))


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
    if isinstance(reply.content, dict) and "digest" in reply.content:
        return "open investigations"  # the daily digest (engine.jobs.digest): its text lists them
    if reply.kind == ReplyKind.TURN and reply.title:
        # the heading is "Sophia · researcher · confidence medium": the name is shown already
        return reply.title.split(" · ", 1)[1] if " · " in reply.title else reply.title
    if reply.kind == ReplyKind.ROOT:
        return f"investigation {reply.investigation_id}" if reply.investigation_id else "investigation"
    return {ReplyKind.ANSWER: "", ReplyKind.QUESTION: "asks you", ReplyKind.ERROR: "problem"}.get(reply.kind, reply.kind.value)


def render_reply(reply: Reply, style: Style, *, channel: str | None = None, width: int | None = None) -> str:
    """A header line with the persona's name, then the text, indented and wrapped to `width`
    (None: not wrapped). Ends with a blank line."""
    where = f"#{reply.channel} " if channel is not None and reply.channel != channel else ""
    tag = _tag(reply)
    header = style.dim(where) + style.name(reply.voice) + (style.dim(f" · {tag}") if tag else "")
    lines = reply.text.splitlines() or [""]
    if reply.kind == ReplyKind.TURN and reply.title:
        lines = [line for line in lines if line.strip() != reply.title.strip()]
    body = "\n".join(wrapped for line in lines for wrapped in wrap_line(line, width, INDENT))
    out = f"{header}\n{body}"
    commands = [ACTION_COMMANDS[a.kind] for a in reply.actions if a.kind in ACTION_COMMANDS]
    if commands:
        hint = f"→ {' · '.join(commands)} · or reply to add evidence"
        out += "\n" + "\n".join(style.dim(line) for line in wrap_line(hint, width, INDENT, INDENT + "  "))
    return out + "\n"


def render_working(voice: Voice, style: Style) -> str:
    return style.dim(f"{voice.emoji_char} {voice.display_name} is thinking…".strip())
