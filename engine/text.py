"""What a person's text means, as opposed to how it was typed: invisible characters and channel names.

Text pasted from chat clients, documents and web pages carries characters nobody sees: zero-width
spaces, joiners, byte-order marks, direction marks and bidi controls, soft hyphens. They must
never change what a message means (`@so\u200bphia hi` is addressed to Sophia, a message of only
invisible characters is empty), so the engine reads messages through `visible()`.

Only meaning is normalised here. The text a person wrote is stored as they wrote it (memory keeps
the original), and an emoji sequence joined by ZWJ (👩‍💻, 🏳️‍🌈) keeps its joiner even in the
visible text: a joiner after a symbol or a variation selector builds an emoji, while a joiner
inside a word (`Ka\u200dren`) is noise and goes.

Only the standard library is imported, so the command line can use this while it parses.
"""

from __future__ import annotations

import re
import unicodedata

ZWJ = "\u200d"

#: Characters that are invisible and carry no meaning in a chat message.
INVISIBLE = frozenset(
    "\u00ad"  # soft hyphen
    "\u034f"  # combining grapheme joiner
    "\u061c"  # Arabic letter mark
    "\u180e"  # Mongolian vowel separator
    "\u200b\u200c\u200d"  # zero-width space, non-joiner, joiner
    "\u200e\u200f"  # left-to-right / right-to-left marks
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2060\u2061\u2062\u2063\u2064"  # word joiner, invisible operators
    "\u2066\u2067\u2068\u2069"  # bidi isolates
    "\ufeff"  # byte-order mark / zero-width no-break space
)

_INVISIBLE_RE = re.compile("[" + "".join(sorted(INVISIBLE)) + "]")


def _builds_emoji(before: str) -> bool:
    """A ZWJ after a symbol (🧑, 🏳), a variation selector (U+FE0F) or a skin tone joins an emoji."""
    if not before:
        return False
    if before in "\ufe0f\ufe0e" or "\U0001f3fb" <= before <= "\U0001f3ff":
        return True
    return unicodedata.category(before) in ("So", "Sk")


def visible(text: str | None) -> str:
    """The text without invisible characters; joiners inside emoji sequences are kept."""
    if not text:
        return ""
    if not _INVISIBLE_RE.search(text):
        return text  # the common case: nothing to do
    out: list[str] = []
    for ch in text:
        if ch not in INVISIBLE:
            out.append(ch)
        elif ch == ZWJ and out and _builds_emoji(out[-1]):
            out.append(ch)
    return "".join(out)


def is_blank(text: str | None) -> bool:
    """Nothing a person could read: empty, whitespace, or invisible characters only."""
    return not visible(text).strip()


def channel_name(raw: str | None) -> str:
    """A channel as people name it, the way memory keys it: `#payments`, ` payments ` → `payments`.

    The leading `#` is how people write a channel, not part of its name; invisible characters and
    surrounding space are dropped. Case is kept: Slack channel ids (C0123ABC) are case-sensitive
    keys. Returns "" when nothing is left (the caller says what to pass instead).
    """
    name = visible(raw).strip()
    name = name.lstrip("#").strip()
    return name


_SLUG_RE = re.compile(r"[^0-9a-z]+")


def slug(name: str, *, limit: int = 40) -> str:
    """A short, readable, shell-safe form of a channel name for ids: `#Payments Team` → `payments-team`.

    Accents are folded (`café` → `cafe`); a name with no letters or digits left gives "channel".
    """
    folded = unicodedata.normalize("NFKD", channel_name(name)).encode("ascii", "ignore").decode("ascii")
    out = _SLUG_RE.sub("-", folded.lower()).strip("-")
    return out[:limit].strip("-") or "channel"
