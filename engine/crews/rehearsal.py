"""The offline rehearsal of a crew: crewai runs for real, but its model is a local object that
never touches the network and says plainly that it is a rehearsal.

Built lazily (it subclasses crewai's `BaseLLM`): importing this module is what imports crewai.
"""

from __future__ import annotations

import re
from typing import Any

from engine.crews.runner import import_crewai

REHEARSAL_MARK = "🧪 Rehearsal (no model configured)"

_TASK_RE = re.compile(r"Current Task:\s*(.+?)(?:\n\s*\n|\Z)", re.IGNORECASE | re.DOTALL)


def _last_user_text(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


def rehearsal_answer(role: str, prompt: str) -> str:
    """What an agent "answers" in a rehearsal: its role and the task it was given, no invention."""
    found = _TASK_RE.search(prompt)
    task = " ".join((found.group(1) if found else prompt).split())[:200]
    return (f"Thought: I can answer this without tools.\nFinal Answer: {REHEARSAL_MARK}: as the {role} "
            f"I would work on “{task}”. Connect a model (ANTHROPIC_API_KEY, OPENAI_API_KEY or OPENAI_BASE_URL) "
            "for real work.")


def rehearsal_llm():
    crewai = import_crewai()
    from crewai.llms.base_llm import BaseLLM

    class RehearsalLLM(BaseLLM):
        def call(self, messages, tools=None, callbacks=None, available_functions=None, from_task=None,
                 from_agent=None, response_model=None) -> str:
            role = getattr(from_agent, "role", "agent")
            described = getattr(from_task, "description", None)
            return rehearsal_answer(role, f"Current Task: {described}" if described else _last_user_text(messages))

        def supports_function_calling(self) -> bool:
            return False

    del crewai
    return RehearsalLLM(model="orchestra-rehearsal")
