"""Reply → Slack messages: Block Kit a person can scan, split within Slack's limits.

What a reply says, laid out per mode (research, critique, plan; the crew's modes in
`crew_render.py`), the daily digest, and the packing of those blocks into messages. The text
rules and single blocks they are built from live in `blocks.py`.

Pure functions, no Slack SDK: the outbox posts what this returns. Nothing is ever cut away:
long texts are split into several sections, and sections into several messages (posted one
after another in the same thread), each with a `text` fallback for notifications.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from adapters.slack.blocks import (
    MAX_BLOCKS,
    MAX_MESSAGE_CHARS,
    MAX_TEXT_CHARS,
    USER_ID_RE,
    action_buttons,
    context,
    escape,
    header,
    section,
    titled,
    truncate,
)
from engine.models import Reply, ReplyKind, Voice

MODE_LABELS = {"researcher": "Research", "critic": "Critique", "planner": "Plan", "crew-plan": "Crew plan",
               "crew-progress": "Crew at work", "crew-result": "Crew result", "crew-review": "Crew review"}


@dataclass
class SlackMessage:
    """One `chat.postMessage`: fallback text plus blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

# --- findings -------------------------------------------------------------------------------


def _bullets(items: list[Any], fmt=lambda x: escape(str(x))) -> str:
    return "\n".join(f"• {fmt(item)}" for item in items if item not in (None, "", {}))


def _s(value: Any) -> str:
    return escape(str(value).strip()) if value not in (None, "") else ""


def _list(content: dict[str, Any], key: str) -> list[Any]:
    value = content.get(key)
    return value if isinstance(value, list) else ([] if value in (None, "") else [value])


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"text": value}


def research_blocks(c: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = section(_s(c.get("summary"))) if c.get("summary") else []

    def evidence(e: Any) -> str:
        e = _dict(e)
        claim, source = _s(e.get("claim") or e.get("text")), _s(e.get("source"))
        return f"{claim} — _{source}_" if source else claim

    blocks += titled(":mag: Evidence", _bullets(_list(c, "evidence"), evidence))
    hyp = c.get("hypothesis")
    if hyp:
        hyp = _dict(hyp)
        conf = _s(hyp.get("confidence"))
        label = ":bulb: *Hypothesis*" + (f" · confidence: *{conf}*" if conf else "")
        blocks += section(f"{label}\n{_s(hyp.get('statement') or hyp.get('text'))}")
    blocks += titled(":link: Patterns", _bullets(_list(c, "patterns")))

    def gap(g: Any) -> str:
        g = _dict(g)
        text = _s(g.get("question") or g.get("text"))
        return f"{text} _(only you can answer this)_" if g.get("needs_people") else text

    blocks += titled(":grey_question: Gaps", _bullets(_list(c, "gaps"), gap))
    return blocks


def critic_blocks(c: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = section(_s(c.get("summary"))) if c.get("summary") else []
    blocks += titled(":crossed_swords: Challenges", _bullets(_list(c, "challenges")))
    blocks += titled(":warning: Vulnerabilities", _bullets(_list(c, "vulnerabilities")))

    def alternative(a: Any) -> str:
        a = _dict(a)
        statement, why = _s(a.get("statement") or a.get("text")), _s(a.get("why"))
        return f"{statement} — _{why}_" if why else statement

    blocks += titled(":twisted_rightwards_arrows: Alternatives", _bullets(_list(c, "alternatives"), alternative))
    blocks += titled(":rotating_light: Risks", _bullets(_list(c, "risks")))
    if c.get("remaining_confidence"):
        blocks += section(f"*Remaining confidence:* {_s(c['remaining_confidence'])}")
    return blocks


def planner_blocks(c: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = section(_s(c.get("summary"))) if c.get("summary") else []
    for n, phase in enumerate(_list(c, "phases"), start=1):
        phase = _dict(phase)
        name = _s(phase.get("name") or phase.get("text")) or f"Phase {n}"
        duration = _s(phase.get("duration"))
        lines = [f"*:round_pushpin: Phase {n}: {name}*" + (f" · _{duration}_" if duration else "")]
        if _list(phase, "steps"):
            lines.append("*Steps*\n" + _bullets(_list(phase, "steps")))
        if _list(phase, "success_criteria"):
            lines.append("*Success criteria*\n" + _bullets(_list(phase, "success_criteria")))
        blocks += section("\n".join(lines))
    if c.get("timeline"):
        blocks += section(f"*:calendar: Timeline*\n{_s(c['timeline'])}")
    blocks += titled(":jigsaw: Dependencies", _bullets(_list(c, "dependencies")))

    def risk(r: Any) -> str:
        r = _dict(r)
        text, mitigation = _s(r.get("risk") or r.get("text")), _s(r.get("mitigation"))
        return f"{text} → _{mitigation}_" if mitigation else text

    blocks += titled(":shield: Risks and mitigations", _bullets(_list(c, "risks"), risk))
    blocks += titled(":chart_with_upwards_trend: Metrics", _bullets(_list(c, "metrics")))
    return blocks


FINDING_RENDERERS = {"researcher": research_blocks, "critic": critic_blocks, "planner": planner_blocks}
# the crew modes: adapters.slack.crew_render builds on the helpers above and adds its renderers
# to FINDING_RENDERERS when imported (hence the late import)
import adapters.slack.crew_render  # noqa: E402,F401


# --- the daily digest -----------------------------------------------------------------------

DIGEST_STATUS = {"active": "in progress", "waiting": "waiting for your answer", "paused": "paused"}
_WORKSPACE_URL_RE = re.compile(r"^https://[A-Za-z0-9][A-Za-z0-9.-]*/?$")
_TS_RE = re.compile(r"^\d{6,}\.\d{1,9}$")


def permalink(workspace_url: str | None, channel: str, ts: str | None) -> str | None:
    """The thread's link as Slack's own "Copy link" gives it: `<workspace>/archives/C…/p<ts>`.

    Built from `auth.test`'s workspace URL (asked once at start-up), so a digest costs no
    `chat.getPermalink` call per investigation, and it opens the thread in the desktop app, the
    browser or the phone alike. None when the workspace URL is not known.
    """
    if not workspace_url or not _WORKSPACE_URL_RE.match(workspace_url) or not ts or not _TS_RE.match(ts):
        return None
    if not re.fullmatch(r"[A-Z0-9]{2,30}", channel or ""):
        return None
    return f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"


def digest_blocks(reply: Reply, workspace_url: str | None) -> list[dict[str, Any]]:
    """One line per open investigation: its readable id, its question linked to its thread (a
    Slack user clicks the question, not an id), its status and lead."""
    items = [i for i in (reply.content or {}).get("digest") or [] if isinstance(i, dict)]
    n = len(items)
    lines = []
    for item in items:
        title = truncate(" ".join(str(item.get("title") or "").split()), 120)
        label = escape(title).replace("|", "¦") or "(untitled)"
        link = permalink(workspace_url, reply.channel, item.get("thread"))
        question = f"<{link}|{label}>" if link else f"_{label}_"
        status = DIGEST_STATUS.get(str(item.get("status")), _s(item.get("status")))
        lines.append(f"• `{_s(item.get('id'))}` {question} · {status} · {_s(item.get('lead'))}")
    return [
        *section(f"{reply.voice.emoji} *{escape(reply.voice.display_name)}*: "
                 f"{n} investigation{'s are' if n != 1 else ' is'} open in this channel"),
        *section("\n".join(lines)),
        context("Reply in an investigation's thread to move it on."),
    ]


# --- a whole reply --------------------------------------------------------------------------


def _byline(reply: Reply) -> str:
    parts = [f"{reply.voice.emoji} *{escape(reply.voice.display_name)}*"]
    if reply.mode:
        parts.append(MODE_LABELS.get(reply.mode, escape(reply.mode)))
    if reply.investigation_id:
        parts.append(f"`{escape(reply.investigation_id)}`")
    return " · ".join(parts)


def _lines_after(text: str, first: str | None) -> str:
    """`text` without a first line that only repeats `first` (a heading already shown)."""
    head, _, rest = text.partition("\n")
    return rest if first and head.strip() == first.strip() else text


def body_blocks(reply: Reply, workspace_url: str | None = None) -> list[dict[str, Any]]:
    """Every block of the reply, in order, before splitting into messages."""
    if reply.kind is ReplyKind.NOTICE and isinstance(reply.content, dict) and "digest" in reply.content:
        return digest_blocks(reply, workspace_url)
    blocks: list[dict[str, Any]] = []
    renderer = FINDING_RENDERERS.get(reply.mode or "")
    rich = reply.structured and renderer is not None and isinstance(reply.content, dict) and bool(reply.content)
    text = reply.text
    if reply.offline:
        # The engine may open the text with its own offline line: show it once, as the mark.
        head, _, rest = text.partition("\n")
        if "offline" in head.lower():
            blocks.append(context(escape(head.strip())))
            text = rest
        else:
            blocks.append(context(":test_tube: *Offline rehearsal*: a canned answer, no AI model was asked."))
    if reply.kind is ReplyKind.TURN and reply.title and reply.mode != "crew-progress":  # progress: one short line
        blocks.insert(0, header(reply.title))
        text = _lines_after(text, reply.title)
    if reply.kind is ReplyKind.TURN or reply.mode:
        blocks.append(context(_byline(reply)))
    if not reply.structured and "unstructured" not in text.lower():
        what = f"the {reply.mode} format" if reply.mode else "the expected format"
        blocks.append(context(f":warning: *Unstructured answer*: it did not fit {what}, so it is shown as written."))
    if reply.kind is ReplyKind.ERROR:
        blocks.append(context(":warning: Something went wrong."))
    if reply.kind is ReplyKind.QUESTION:
        blocks.append(context(f":raising_hand: {escape(reply.voice.display_name)} needs your input: reply in this thread."))
    if rich:
        blocks += renderer(reply.content) or section(escape(text))  # type: ignore[misc,arg-type]
    elif text.strip():
        blocks += section(escape(text))
    if reply.actions:
        blocks.append(action_buttons(list(reply.actions)))
    return blocks


def _block_chars(block: dict[str, Any]) -> int:
    if "text" in block and isinstance(block["text"], dict):
        return len(block["text"].get("text", ""))
    if block.get("type") == "context":
        return sum(len(e.get("text", "")) for e in block["elements"])
    return 200  # actions and the like: small, but not free


def _block_text(block: dict[str, Any]) -> str:
    """The block's words for the message's fallback `text`, which Slack reads as mrkdwn."""
    if "text" in block and isinstance(block["text"], dict):
        text = block["text"].get("text", "")
        return escape(text) if block["text"].get("type") == "plain_text" else text
    if block.get("type") == "context":
        return " ".join(e.get("text", "") for e in block["elements"])
    return ""


def pack(blocks: list[dict[str, Any]], voice: Voice) -> list[SlackMessage]:
    """Group blocks into messages within the block count and size budget, in order."""
    groups: list[list[dict[str, Any]]] = [[]]
    size = 0
    for block in blocks:
        chars = _block_chars(block)
        current = groups[-1]
        # leave room for the "continued" context block every later message starts with
        if current and (len(current) >= MAX_BLOCKS - 1 or size + chars > MAX_MESSAGE_CHARS):
            groups.append([])
            size = 0
        groups[-1].append(block)
        size += chars
    total = len(groups)
    messages = []
    for n, group in enumerate(groups, start=1):
        if total > 1 and n > 1:
            group = [context(f"{voice.emoji} {escape(voice.display_name)}, continued ({n}/{total})")] + group
        fallback = "\n".join(t for t in (_block_text(b) for b in group) if t)
        messages.append(SlackMessage(text=truncate(fallback, MAX_TEXT_CHARS) or voice.display_name, blocks=group))
    return messages


def render_reply(reply: Reply, workspace_url: str | None = None) -> list[SlackMessage]:
    """The messages to post for one reply, in order; the first one carries the heading.

    `workspace_url` (`auth.test`'s `url`) lets a digest link its threads (`permalink`)."""
    blocks = body_blocks(reply, workspace_url)
    if not blocks:
        blocks = section(escape(reply.text) or "…")
    messages = pack(blocks, reply.voice)
    # The first message's fallback is what notifications show: make it the reply's own words.
    first = messages[0]
    lead = escape(reply.text.strip()) if reply.text.strip() else first.text
    first.text = truncate(f"{escape(reply.voice.display_name)}: {lead}", MAX_TEXT_CHARS)
    if reply.asker and USER_ID_RE.match(reply.asker):
        for message in messages:
            _mention_asker(message, reply.asker)
    return messages


def _mention_asker(message: SlackMessage, asker: str) -> None:
    """Put back the one mention the bot may make: of the person who asked (`Reply.asker`).
    Every other mention in the text stayed escaped, whoever wrote it."""
    escaped, real = f"&lt;@{asker}&gt;", f"<@{asker}>"
    message.text = message.text.replace(escaped, real)
    for block in message.blocks:
        objects = [block.get("text")] + list(block.get("elements") or []) + list(block.get("fields") or [])
        for obj in objects:
            if isinstance(obj, dict) and obj.get("type") == "mrkdwn" and isinstance(obj.get("text"), str):
                obj["text"] = obj["text"].replace(escaped, real)


def placeholder(voice: Voice) -> SlackMessage:
    text = f"_{voice.display_name} is thinking…_"
    return SlackMessage(text=text, blocks=[context(f"{voice.emoji} {text}")])
