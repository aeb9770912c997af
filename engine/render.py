"""Plain-text renderings of findings and notices.

This text is what the terminal shows, what Slack and Discord use as fallback text, and what
memory indexes for recall. Rich renderings (Block Kit, embeds) are the adapters' business and
start from `Reply.content` instead.
"""

from __future__ import annotations

from typing import Any


def _bullets(items: list[str], indent: str = "  ") -> list[str]:
    return [f"{indent}• {item}" for item in items if item]


def render_research(f: dict[str, Any]) -> str:
    hyp = f.get("hypothesis") or {}
    lines = [f.get("summary", ""), "", "Evidence:"]
    lines += _bullets([f"{e.get('claim')} (source: {e.get('source')})" for e in f.get("evidence", [])])
    if f.get("patterns"):
        lines += ["Patterns:", *_bullets(f["patterns"])]
    lines += [f"Hypothesis ({hyp.get('confidence', '?')} confidence): {hyp.get('statement', '')}"]
    if f.get("gaps"):
        lines += ["Gaps:"]
        lines += _bullets(
            [g.get("question", "") + ("  [needs people]" if g.get("needs_people") else "") for g in f["gaps"]]
        )
    return "\n".join(lines).strip()


def render_critic(f: dict[str, Any]) -> str:
    lines = [f.get("summary", ""), "", "Challenges:", *_bullets(f.get("challenges", []))]
    if f.get("vulnerabilities"):
        lines += ["Vulnerabilities:", *_bullets(f["vulnerabilities"])]
    lines += ["Alternative hypotheses:"]
    lines += _bullets([f"{str(a.get('statement', '')).rstrip('.:; ')}: {a.get('why')}" for a in f.get("alternatives", [])])
    if f.get("risks"):
        lines += ["Risks:", *_bullets(f["risks"])]
    lines += [f"Remaining confidence: {f.get('remaining_confidence', '?')}"]
    return "\n".join(lines).strip()


def render_plan(f: dict[str, Any]) -> str:
    lines = [f.get("summary", ""), ""]
    for i, phase in enumerate(f.get("phases", []), 1):
        lines.append(f"Phase {i}: {phase.get('name')} ({phase.get('duration')})")
        lines += _bullets(phase.get("steps", []), "    ")
        lines.append("    Success criteria:")
        lines += _bullets(phase.get("success_criteria", []), "      ")
    lines.append(f"Timeline: {f.get('timeline', '')}")
    if f.get("dependencies"):
        lines += ["Dependencies:", *_bullets(f["dependencies"])]
    if f.get("risks"):
        lines += ["Risks and mitigations:"]
        lines += _bullets([f"{r.get('risk')} → {r.get('mitigation')}" for r in f["risks"]])
    if f.get("metrics"):
        lines += ["Metrics:", *_bullets(f["metrics"])]
    return "\n".join(lines).strip()


RENDERERS = {"researcher": render_research, "critic": render_critic, "planner": render_plan}


def render_finding(mode: str, finding: dict[str, Any]) -> str:
    return RENDERERS[mode](finding)


def summary_line(mode: str | None, finding: dict[str, Any] | None, text: str, limit: int = 240) -> str:
    """One line for a trimmed history: the finding's summary, or the start of the text."""
    line = (finding or {}).get("summary") or text
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
