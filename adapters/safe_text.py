"""Text a persona posts notifies nobody and relabels no link, whatever the model wrote.

Platform-neutral rules every adapter applies to what it posts (Slack's `blocks.escape` uses them;
the Discord adapter should too):

- `@here`, `@channel`, `@everyone` written plainly get an invisible WORD JOINER after the `@`, so
  a platform that parses plain words into mentions (Slack with `link_names`, Discord always)
  sees only text. Discord must also post with `allowed_mentions` that notify nobody
  (`discord.AllowedMentions.none()`), which covers `<@id>`, `<@&role>` and the rest.
- A markdown link whose label differs from its target, `[bank.com](http://evil)`, is shown as
  `bank.com (http://evil)`: the reader sees where it goes before clicking.

The platform's own mention and link syntax (Slack's `<@U…>`, `<!here>`, `<url|label>`) is
neutralised by the adapter's escaping: for Slack, `&`, `<` and `>` are always escaped.
"""

from __future__ import annotations

import re

WORD_JOINER = "\u2060"

_MASS_MENTION_RE = re.compile(r"@(?=(?:here|channel|everyone|all)\b)", re.IGNORECASE)
_MD_LINK_RE = re.compile(r"\[([^\[\]\n]{0,500})\]\(\s*<?([^()<>\s]{1,2000})>?\s*\)")


def _same_place(label: str, target: str) -> bool:
    def bare(s: str) -> str:
        s = s.strip().lower()
        s = re.sub(r"^[a-z][a-z0-9+.-]*://", "", s)
        return s.removeprefix("www.").rstrip("/")

    return bare(label) == bare(target)


def unlabel_links(text: str) -> str:
    """`[label](url)` → `label (url)` when the label is not the url itself, else just the url."""

    def plain(m: re.Match[str]) -> str:
        label, target = m.group(1).strip(), m.group(2)
        return target if not label or _same_place(label, target) else f"{label} ({target})"

    return _MD_LINK_RE.sub(plain, text)


def defuse_mass_mentions(text: str) -> str:
    """`@here` → `@⁠here` (a word joiner after the `@`): read the same, notify nobody."""
    return _MASS_MENTION_RE.sub("@" + WORD_JOINER, text)


def neutral(text: str) -> str:
    """Both rules: what every adapter applies to a persona's text before its own escaping."""
    return defuse_mass_mentions(unlabel_links(text))
