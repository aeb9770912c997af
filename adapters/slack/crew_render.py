"""The crew's posts as Block Kit: the orchestrator's review of the crew's plan (who works on
what), its progress lines, its result with the tokens it used, and her review of the result.

Kept apart from `render.py`, which renders investigations and whose findings helpers this shares;
the escaping and the blocks come from `blocks.py`. Every renderer reads the engine's content defensively: a field missing or of another
shape is skipped, and `render.body_blocks` falls back to the reply's own text when nothing is left.
"""

from __future__ import annotations

from typing import Any

from adapters.slack.blocks import context, section, titled
from adapters.slack.render import FINDING_RENDERERS, _bullets, _dict, _list, _s

#: How a progress status is shown; anything else is shown as the engine wrote it.
STATUS_MARKS = {"started": ":hourglass_flowing_sand:", "done": ":white_check_mark:", "failed": ":x:"}


def _agent(a: Any) -> str:
    """`*Lead market strategist* (senior, sales): goal` from a dict, or the text as given."""
    a = _dict(a)
    role = _s(a.get("role") or a.get("name") or a.get("text"))
    about = ", ".join(x for x in (_s(a.get("seniority")), _s(a.get("domain"))) if x)
    goal = _s(a.get("goal"))
    line = f"*{role}*" if role else ""
    if about:
        line += f" ({about})"
    return f"{line}: {goal}" if goal and line else line or goal


def _task(t: Any) -> str:
    t = _dict(t)
    text = _s(t.get("description") or t.get("name") or t.get("text"))
    who = _s(t.get("agent"))
    return f"{text} → _{who}_" if who and text else text


def crew_plan_blocks(c: dict[str, Any]) -> list[dict[str, Any]]:
    """The orchestrator's review of the plan, then the team and the tasks it will work through."""
    blocks = section(_s(c.get("review"))) if c.get("review") else []
    blocks += titled(":busts_in_silhouette: The crew", _bullets(_list(c, "agents"), _agent))
    tasks = [t for t in (_task(t) for t in _list(c, "tasks")) if t]
    if tasks:
        blocks += section("*:clipboard: Tasks*\n" + "\n".join(f"{n}. {t}" for n, t in enumerate(tasks, start=1)))
    return blocks


def crew_progress_blocks(c: dict[str, Any]) -> list[dict[str, Any]]:
    """One short line: which agent, which task, started or done."""
    status = str(c.get("status") or "").strip().lower()
    mark = STATUS_MARKS.get(status, ":arrow_forward:")
    agent, task = _s(c.get("agent")), _s(c.get("task"))
    if not (agent or task):
        return []
    said = {"started": "is working on", "done": "finished"}.get(status, _s(status) or "on")
    return [context(f"{mark} *{agent or 'The crew'}* {said}: {task}" if task else f"{mark} *{agent}* {said}")]


def usage_line(usage: Any) -> str:
    """`Tokens: 1,234 in · 567 out · 1,801 in all` from the crew's usage, whatever keys it has."""
    if not isinstance(usage, dict) or not usage:
        return ""
    names = {"prompt_tokens": "in", "completion_tokens": "out", "total_tokens": "in all",
             "successful_requests": "requests"}
    parts = []
    for key, value in usage.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{value:,} {names.get(key, escape_key(key))}")
    return ":bar_chart: Tokens: " + " · ".join(parts) if parts else ""


def escape_key(key: Any) -> str:
    return _s(str(key).replace("_", " "))


def crew_result_blocks(c: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = titled(":package: Result", _s(c.get("result"))) if c.get("result") else []
    line = usage_line(c.get("usage"))
    if line:
        blocks.append(context(line))
    return blocks


def crew_review_blocks(c: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = section(f"*:scales: Verdict:* {_s(c['verdict'])}") if c.get("verdict") else []
    if c.get("review"):
        blocks += section(_s(c.get("review")))
    return blocks


CREW_RENDERERS = {
    "crew-plan": crew_plan_blocks,
    "crew-progress": crew_progress_blocks,
    "crew-result": crew_result_blocks,
    "crew-review": crew_review_blocks,
}
FINDING_RENDERERS.update(CREW_RENDERERS)
