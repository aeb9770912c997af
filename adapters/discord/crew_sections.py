"""The crew's posts as embed sections: the orchestrator's review of the crew's plan (who works
on what), its progress lines, its result with the tokens it used, and her review of the result.

Kept apart from `sections.py`, which holds the investigation's findings; the helpers are shared.
Content of another shape is skipped field by field, and `sections_of` falls back to the reply's
own text when nothing is left.
"""

from __future__ import annotations

from typing import Any

from adapters.discord.sections import FINDING_RENDERERS, Field, Prose, Section, _bullets, _dict, _list, _s

#: How a progress status is shown; anything else is shown as the engine wrote it.
STATUS_MARKS = {"started": "⏳", "done": "✅", "failed": "❌"}
USAGE_NAMES = {"prompt_tokens": "in", "completion_tokens": "out", "total_tokens": "in all", "successful_requests": "requests"}


def _agent(a: Any) -> str:
    """`**Senior sales lead** (senior, sales): goal` from a dict, or the text as given."""
    a = _dict(a)
    role = _s(a.get("role") or a.get("name") or a.get("text"))
    about = ", ".join(x for x in (_s(a.get("seniority")), _s(a.get("domain"))) if x)
    goal = _s(a.get("goal"))
    line = f"**{role}**" if role else ""
    if about:
        line += f" ({about})"
    return f"{line}: {goal}" if goal and line else line or goal


def _task(t: Any) -> str:
    t = _dict(t)
    text, who = _s(t.get("description") or t.get("name") or t.get("text")), _s(t.get("agent"))
    return f"{text} → *{who}*" if who and text else text


def crew_plan_sections(c: dict[str, Any]) -> list[Section]:
    out: list[Section] = [Prose(_s(c.get("review")))] if c.get("review") else []
    out.append(Field("👥 The crew", _bullets(_list(c, "agents"), _agent)))
    tasks = [t for t in (_task(t) for t in _list(c, "tasks")) if t]
    out.append(Field("📋 Tasks", "\n".join(f"{n}. {t}" for n, t in enumerate(tasks, start=1))))
    return out


def crew_progress_sections(c: dict[str, Any]) -> list[Section]:
    """One short line: which agent, which task, started or done."""
    status = str(c.get("status") or "").strip().lower()
    agent, task = _s(c.get("agent")), _s(c.get("task"))
    if not (agent or task):
        return []
    said = {"started": "is working on", "done": "finished"}.get(status, _s(status) or "on")
    line = f"{STATUS_MARKS.get(status, '▶️')} **{agent or 'The crew'}** {said}"
    return [Prose(f"{line}: {task}" if task else line)]


def usage_line(usage: Any) -> str:
    """`📊 Tokens: 1,234 in · 567 out · 1,801 in all`, whatever counts the usage holds."""
    if not isinstance(usage, dict):
        return ""
    parts = [f"{v:,} {USAGE_NAMES.get(k, _s(str(k).replace('_', ' ')))}" for k, v in usage.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return "📊 Tokens: " + " · ".join(parts) if parts else ""


def crew_result_sections(c: dict[str, Any]) -> list[Section]:
    out: list[Section] = [Field("📦 Result", _s(c.get("result")))] if c.get("result") else []
    line = usage_line(c.get("usage"))
    if line:
        out.append(Prose(line))
    return out


def crew_review_sections(c: dict[str, Any]) -> list[Section]:
    out: list[Section] = [Field("⚖️ Verdict", _s(c["verdict"]), inline=True)] if c.get("verdict") else []
    if c.get("review"):
        out.append(Prose(_s(c["review"])))
    return out


CREW_RENDERERS = {
    "crew-plan": crew_plan_sections,
    "crew-progress": crew_progress_sections,
    "crew-result": crew_result_sections,
    "crew-review": crew_review_sections,
}
FINDING_RENDERERS.update(CREW_RENDERERS)
