"""Slack's text rules and Block Kit primitives: the pieces every Slack post is built from.

Escaping (`escape`, `plain`, `mention`), cutting text within Slack's limits (`split_text`,
`truncate`), single blocks (`section`, `titled`, `context`, `header`) and our action buttons
(`action_buttons`, `replace_actions`, `ACTION_ID_RE`), with the limits they respect. Kept apart
from `render.py`, which decides what a reply says (findings, digests, paging into messages), so
that the listeners and the translator can escape text or swap buttons without the renderers, and
the rules that keep a post from pinging or relabelling anyone live in one small place.
Pure functions, no Slack SDK.
"""

from __future__ import annotations

import re
from typing import Any

from adapters.safe_text import WORD_JOINER, neutral
from engine.models import Action, TaskKind

MAX_SECTION_CHARS = 3000  # Slack: section text
MAX_BLOCKS = 50  # Slack: blocks per message
MAX_TEXT_CHARS = 3900  # message `text`: Slack answers msg_too_long around 4,000
MAX_HEADER_CHARS = 150  # header block plain_text
#: What we put in one message's blocks. Slack accepts more, but very large block messages are
#: rejected unpredictably and are hard to read; several posts in the thread are kinder.
MAX_MESSAGE_CHARS = 12_000

ACTION_PREFIX = "orchestra_"
ACTION_KINDS = (TaskKind.CHALLENGE, TaskKind.PLAN, TaskKind.CLOSE, TaskKind.CREW)
ACTION_ID_RE = re.compile(rf"^{ACTION_PREFIX}(challenge|plan|close|crew)$")


# --- text helpers ---------------------------------------------------------------------------


#: A Slack user id: the only mention we ever write is of one person, checked against this.
USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,30}$")


def _escape_plain(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape(text: str) -> str:
    """Text for a mrkdwn field: notifies nobody and relabels no link, whatever it holds.

    `&`, `<` and `>` are always escaped, so no `<@U…>`, `<!here>`, `<!subteam^…>` or
    `<http://evil|bank.com>` survives as Slack syntax: it is shown as written. Plain `@here` and
    markdown links whose label is not their target are neutralised too (`adapters.safe_text`).
    The one mention the bot may make, of the person who asked, is put back by `render_reply`.
    """
    return _escape_plain(neutral(text))


def plain(text: str) -> str:
    """Text for a plain_text field (headers, button labels): the same rules, without entities."""
    return re.sub(r"<(?=[@!#])", "<" + WORD_JOINER, neutral(text))


def mention(user: str) -> str:
    """`<@U…>` for a real user id; anything else is shown as text."""
    return f"<@{user}>" if USER_ID_RE.match(user) else escape(user)


def _safe_cut(text: str, cut: int) -> int:
    """Move a cut back so that it does not fall inside an &amp; / &lt; / &gt; entity."""
    amp = text.rfind("&", max(0, cut - 5), cut)
    if amp != -1 and ";" not in text[amp:cut]:
        return amp if amp > 0 else cut
    return cut


def split_text(text: str, limit: int) -> list[str]:
    """Cut `text` into pieces of at most `limit` characters whose concatenation is `text`.

    Cuts prefer a paragraph break, then a line break, then a space; a text without any is cut
    hard. Pieces that are only whitespace are dropped (Slack rejects empty sections).
    """
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            at = window.rfind(sep)
            if at >= limit // 3:  # do not make absurdly short pieces
                cut = at + len(sep)
                break
        if cut <= 0:
            cut = _safe_cut(rest, limit)
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return [p for p in pieces if p.strip()]


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --- blocks ---------------------------------------------------------------------------------


def section(text: str) -> list[dict[str, Any]]:
    """One or more section blocks (a text longer than Slack allows becomes several)."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": piece}} for piece in split_text(text, MAX_SECTION_CHARS)]


def titled(title: str, body: str) -> list[dict[str, Any]]:
    if not body.strip():
        return []
    return section(f"*{title}*\n{body}")


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, MAX_SECTION_CHARS)}]}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(plain(text), MAX_HEADER_CHARS), "emoji": True}}


def action_buttons(actions: list[Action]) -> dict[str, Any]:
    styles = {TaskKind.PLAN: "primary", TaskKind.CREW: "primary", TaskKind.CLOSE: "danger"}
    elements = []
    for action in actions:
        button: dict[str, Any] = {
            "type": "button",
            "action_id": f"{ACTION_PREFIX}{action.kind.value}",
            "text": {"type": "plain_text", "text": truncate(plain(action.label), 75), "emoji": True},
            "value": action.investigation_id,
        }
        if action.kind in styles:
            button["style"] = styles[action.kind]
        elements.append(button)
    return {"type": "actions", "block_id": "orchestra_actions", "elements": elements[:25]}


def replace_actions(blocks: list[dict[str, Any]], block_id: str | None, note: str) -> list[dict[str, Any]] | None:
    """`blocks` with the clicked buttons (the actions block `block_id`, else any actions block
    holding our buttons) replaced by the context line `note`; every other block as it was.
    None when there are no such buttons left (the message was already updated)."""

    def ours(block: dict[str, Any]) -> bool:
        return any(ACTION_ID_RE.match(str(e.get("action_id", ""))) for e in block.get("elements", []) if isinstance(e, dict))

    actions = [b for b in blocks if isinstance(b, dict) and b.get("type") == "actions"]
    targets = [b for b in actions if block_id and b.get("block_id") == block_id] or [b for b in actions if ours(b)]
    if not targets:
        return None
    first, rest = id(targets[0]), {id(b) for b in targets[1:]}
    return [context(note) if id(b) == first else b for b in blocks if id(b) not in rest]
