"""What a model sees besides the persona: the thread's history and the channel's memory, in budget.

Budgets are in tokens, estimated as characters / 4 (close enough for English prose, and it
errs on the generous side for code and numbers).
"""

from __future__ import annotations

from engine.memory.records import Recollection, TurnRecord, TurnRole
from engine.models import MAX_TASK_TEXT
from engine.render import summary_line


def estimate_tokens(text: str) -> int:
    return len(text) // 4 + 1


def clip_for_model(text: str, limit: int = MAX_TASK_TEXT) -> tuple[str, bool]:
    """The text a model gets: whole, or its start with a visible note. The stored text stays whole."""
    if len(text) <= limit:
        return text, False
    note = f"\n\n[message cut from {len(text):,} to {limit:,} characters for the model]"
    return text[:limit] + note, True


def _label(turn: TurnRecord) -> str:
    if turn.role == TurnRole.HUMAN:
        return f"Person ({turn.author})"
    mode = f", {turn.mode}" if turn.mode else ""
    return f"{turn.author.capitalize()}{mode}"


def history_text(turns: list[TurnRecord], budget_tokens: int) -> str:
    """Newest turns in full while they fit; older ones as one-line summaries; the rest counted.

    The newest turns matter most for what comes next, so they keep their detail.
    """
    if not turns:
        return "(no earlier turns)"
    full_budget = budget_tokens * 3 // 4
    kept: list[str] = []
    used = 0
    i = len(turns) - 1
    while i >= 0:
        block = f"[{turns[i].seq}] {_label(turns[i])}:\n{turns[i].text}"
        cost = estimate_tokens(block)
        if used + cost > full_budget and kept:
            break
        if used + cost > full_budget:  # even the newest alone is too big: clip it
            block = block[: full_budget * 4] + " …"
            cost = estimate_tokens(block)
        kept.append(block)
        used += cost
        i -= 1
    summaries: list[str] = []
    while i >= 0:
        line = f"[{turns[i].seq}] {_label(turns[i])}: {summary_line(turns[i].mode, turns[i].findings, turns[i].text)}"
        cost = estimate_tokens(line)
        if used + cost > budget_tokens:
            break
        summaries.append(line)
        used += cost
        i -= 1
    parts = []
    if i >= 0:
        parts.append(f"({i + 1} earlier turn(s) omitted)")
    parts += reversed(summaries)
    parts += reversed(kept)
    return "\n\n".join(parts)


def memory_text(recalled: list[Recollection], budget_tokens: int) -> str:
    lines = []
    used = 0
    for r in recalled:
        line = f"- {r.created_at:%Y-%m-%d} «{r.title}» {r.author}" + (f" ({r.mode})" if r.mode else "") + f": {r.text}"
        cost = estimate_tokens(line)
        if used + cost > budget_tokens:
            break
        lines.append(line)
        used += cost
    return "\n".join(lines)
