"""What a reply says, as titled sections, before any of Discord's limits: the findings of each
mode (researcher, critic, planner) as fields, everything else as prose. `render` packs these
into embeds and messages; keeping the two apart keeps each one readable.

All text is neutralised here (`adapters.safe_text.neutral`): no mass mention, no relabelled link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.safe_text import neutral
from engine.models import Reply, ReplyKind


@dataclass
class Prose:
    """Running text: an embed description."""

    text: str


@dataclass
class Field:
    """A titled section: one embed field, or several named "… (continued)"."""

    name: str
    value: str
    inline: bool = False


Section = Prose | Field


def _s(value: Any) -> str:
    return neutral(str(value).strip()) if value not in (None, "") else ""


def _list(content: dict[str, Any], key: str) -> list[Any]:
    value = content.get(key)
    return value if isinstance(value, list) else ([] if value in (None, "") else [value])


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"text": value}


def _bullets(items: list[Any], fmt: Callable[[Any], str] = lambda x: _s(x)) -> str:
    return "\n".join(f"• {fmt(item)}" for item in items if item not in (None, "", {}))


def _summary(c: dict[str, Any]) -> list[Section]:
    return [Prose(_s(c.get("summary")))] if c.get("summary") else []


def research_sections(c: dict[str, Any]) -> list[Section]:
    def evidence(e: Any) -> str:
        e = _dict(e)
        claim, source = _s(e.get("claim") or e.get("text")), _s(e.get("source"))
        return f"{claim} — *{source}*" if source else claim

    def gap(g: Any) -> str:
        g = _dict(g)
        text = _s(g.get("question") or g.get("text"))
        return f"{text} *(only you can answer this)*" if g.get("needs_people") else text

    out = _summary(c) + [Field("🔍 Evidence", _bullets(_list(c, "evidence"), evidence))]
    if c.get("hypothesis"):
        hyp = _dict(c["hypothesis"])
        conf = _s(hyp.get("confidence"))
        out.append(Field("💡 Hypothesis" + (f" · confidence: {conf}" if conf else ""), _s(hyp.get("statement") or hyp.get("text"))))
    out.append(Field("🔗 Patterns", _bullets(_list(c, "patterns"))))
    out.append(Field("❔ Gaps", _bullets(_list(c, "gaps"), gap)))
    return out


def critic_sections(c: dict[str, Any]) -> list[Section]:
    def alternative(a: Any) -> str:
        a = _dict(a)
        statement, why = _s(a.get("statement") or a.get("text")), _s(a.get("why"))
        return f"{statement} — *{why}*" if why else statement

    out = _summary(c) + [
        Field("⚔️ Challenges", _bullets(_list(c, "challenges"))),
        Field("⚠️ Vulnerabilities", _bullets(_list(c, "vulnerabilities"))),
        Field("🔀 Alternatives", _bullets(_list(c, "alternatives"), alternative)),
        Field("🚨 Risks", _bullets(_list(c, "risks"))),
    ]
    if c.get("remaining_confidence"):
        out.append(Field("Remaining confidence", _s(c["remaining_confidence"]), inline=True))
    return out


def planner_sections(c: dict[str, Any]) -> list[Section]:
    def risk(r: Any) -> str:
        r = _dict(r)
        text, mitigation = _s(r.get("risk") or r.get("text")), _s(r.get("mitigation"))
        return f"{text} → *{mitigation}*" if mitigation else text

    out = _summary(c)
    for n, phase in enumerate(_list(c, "phases"), start=1):
        phase = _dict(phase)
        name = _s(phase.get("name") or phase.get("text"))
        duration = _s(phase.get("duration"))
        lines = []
        if _list(phase, "steps"):
            lines.append("**Steps**\n" + _bullets(_list(phase, "steps")))
        if _list(phase, "success_criteria"):
            lines.append("**Success criteria**\n" + _bullets(_list(phase, "success_criteria")))
        out.append(Field(f"📍 Phase {n}" + (f": {name}" if name else "") + (f" · {duration}" if duration else ""), "\n".join(lines)))
    if c.get("timeline"):
        out.append(Field("📅 Timeline", _s(c["timeline"])))
    out.append(Field("🧩 Dependencies", _bullets(_list(c, "dependencies"))))
    out.append(Field("🛡️ Risks and mitigations", _bullets(_list(c, "risks"), risk)))
    out.append(Field("📈 Metrics", _bullets(_list(c, "metrics"))))
    return out


FINDING_RENDERERS: dict[str, Callable[[dict[str, Any]], list[Section]]] = {
    "researcher": research_sections, "critic": critic_sections, "planner": planner_sections,
}
# the crew modes: adapters.discord.crew_sections builds on the helpers above and adds its
# renderers to FINDING_RENDERERS when imported (hence the late import)
import adapters.discord.crew_sections  # noqa: E402,F401


def _heading(text: str, title: str | None) -> tuple[str | None, str]:
    """(embed title, the text under it): a first line that repeats the title is shown once."""
    head, _, rest = text.partition("\n")
    if title and head.strip() == title.strip():
        return title, rest
    return title, text


def digest_sections(reply: Reply) -> list[Section]:
    """The daily digest (engine.jobs.digest): each open investigation's question linked to its
    thread (`https://discord.com/channels/<guild>/<thread>`), its id, status and lead."""
    lines = []
    for item in [i for i in (reply.content or {}).get("digest") or [] if isinstance(i, dict)]:
        title = (neutral(" ".join(str(item.get("title") or "").split()))[:120] or "(untitled)").replace("[", "(").replace("]", ")")
        guild, thread = str(reply.workspace), str(item.get("thread") or "")
        linked = f"[{title}](https://discord.com/channels/{guild}/{thread})" if guild.isdigit() and thread.isdigit() else f"*{title}*"
        status = {"waiting": "waiting for your answer", "active": "in progress"}.get(str(item.get("status")), _s(item.get("status")))
        lines.append(f"• `{_s(item.get('id'))}` {linked} · {status} · {_s(item.get('lead'))}")
    return [Prose("\n".join(lines) + "\nReply in an investigation's thread to move it on.")]


def sections_of(reply: Reply) -> tuple[str | None, list[Section]]:
    """The reply's title (any length) and its sections, in order, before packing into messages."""
    if reply.kind is ReplyKind.NOTICE and isinstance(reply.content, dict) and "digest" in reply.content:
        return "📋 Open investigations in this channel", digest_sections(reply)
    text = neutral(reply.text)
    out: list[Section] = []
    if reply.offline:
        head, _, rest = text.partition("\n")
        if "offline" in head.lower():  # the engine's own offline line: shown once, as a note
            out.append(Prose(f"*{head.strip()}*\n"))
            text = rest
        else:
            out.append(Prose("🧪 *Offline rehearsal*: a canned answer, no AI model was asked.\n"))
    title: str | None = None
    if reply.kind is ReplyKind.ROOT:
        head, _, rest = text.partition("\n")
        if head.strip():
            title, text = head.strip(), rest
    elif reply.kind is ReplyKind.TURN and reply.title:
        title, text = _heading(text, neutral(reply.title))
    elif reply.kind is ReplyKind.QUESTION:
        title = f"🙋 {neutral(reply.voice.display_name)} needs your input"
    elif reply.kind is ReplyKind.ERROR:
        title = "⚠️ Something went wrong"
    if not reply.structured and "unstructured" not in text.lower():
        what = f"the {reply.mode} format" if reply.mode else "the expected format"
        out.append(Prose(f"⚠️ *Unstructured answer*: it did not fit {what}, so it is shown as written.\n"))
    renderer = FINDING_RENDERERS.get(reply.mode or "")
    rich = reply.structured and renderer is not None and isinstance(reply.content, dict) and bool(reply.content)
    found = renderer(reply.content) if rich else []  # type: ignore[misc,arg-type]
    found = [s for s in found if (s.text if isinstance(s, Prose) else s.value).strip()]
    if found:
        out += found
    elif text.strip():
        out.append(Prose(text))
    return title, out
