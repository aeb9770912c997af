"""The start-up banner: which model answers, where the memory lives, what to do next.

Standard library only, and it reads only non-secret settings: the banner is printed on every
start, so it must never be a way for a key to reach a screen, a log or a screenshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from bot.settings import Settings

OFFLINE_HELP = (
    "No model is configured, so the personas run an offline rehearsal (canned, clearly marked answers).\n"
    "To use a real model, set one of these (in the environment, a .env file or ORCHESTRA_CONFIG):\n"
    "  ANTHROPIC_API_KEY=...                       Claude (model: ORCHESTRA_ANTHROPIC_MODEL)\n"
    "  OPENAI_API_KEY=...                          OpenAI (model: ORCHESTRA_OPENAI_MODEL)\n"
    "  OPENAI_BASE_URL=http://localhost:11434/v1   a local OpenAI-compatible server: Ollama, vLLM, llama.cpp"
)


def safe_url(url: str | None) -> str | None:
    """A base URL without user:password, query or fragment, which may carry credentials."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def model_line(settings: "Settings") -> str:
    if settings.provider == "anthropic":
        where = safe_url(settings.anthropic_base_url)
        return f"Anthropic, model {settings.anthropic_model}" + (f" at {where}" if where else "")
    if settings.provider == "openai":
        where = safe_url(settings.openai_base_url)
        kind = "OpenAI-compatible server" if where else "OpenAI"
        return f"{kind}, model {settings.openai_model}" + (f" at {where}" if where else "")
    return "offline rehearsal (no model configured)"


def memory_line(settings: "Settings") -> str:
    """The SQLite file, or the PostgreSQL URL without its password (`PostgresURL.__str__`)."""
    kind = "PostgreSQL" if type(settings.db).__name__ == "PostgresURL" else "SQLite"
    return f"{settings.db} ({kind})"


def banner(settings: "Settings", *, version: str, platforms: list[str], personas: list[str],
           personas_note: str | None = None) -> str:
    lines = [
        f"Orchestra {version} · personas: {', '.join(personas)}"
        + (" (from Notion)" if settings.notion_personas and not personas_note else ""),
        f"Model:     {model_line(settings)}",
        f"Memory:    {memory_line(settings)}",
        f"Platforms: {', '.join(platforms) or 'none'}",
    ]
    if personas_note:
        lines += ["", f"Personas:  {personas_note}"]
    if settings.provider == "offline":
        lines += ["", OFFLINE_HELP]
    return "\n".join(lines)
