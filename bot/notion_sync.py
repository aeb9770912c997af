"""The work behind `orchestra personas init-notion` and `orchestra personas sync` (the commands'
parsing is `bot/notion_commands.py`): create a personas database in Notion, and pull it now."""

from __future__ import annotations

from dataclasses import dataclass

from bot.bootstrap import StartupError, _secret, live_notion_personas, load_personas
from bot.settings import Settings


@dataclass
class NotionDatabase:
    database_id: str
    data_source_id: str
    count: int


async def init_notion_database(settings: Settings, parent: str) -> NotionDatabase:
    """`orchestra personas init-notion`: a new personas database under page `parent`, filled
    with the personas in use without Notion (ORCHESTRA_PERSONAS, or the defaults)."""
    from adapters.notion.personas import build_client, create_database
    from engine.personas.source import PersonaSourceError

    personas = list(load_personas(settings))
    client = build_client(_secret(settings.notion_api_key) or "", base_url=settings.notion_api_url)
    try:
        db, ds = await create_database(client, parent, personas)
    except PersonaSourceError as e:
        raise StartupError(str(e), exit_code=1 if e.transient else 2) from None
    finally:
        await client.aclose()
    return NotionDatabase(db, ds, len(personas))


@dataclass
class SyncReport:
    reached: bool  # Notion answered (False: the last good set is still what is in use)
    lines: list[str]  # what changed, one line each (or that nothing did)
    problems: list[str]  # pages skipped, by name


async def sync_notion_personas(settings: Settings) -> SyncReport:
    """`orchestra personas sync`: pull the Notion database now, keep it as the last good set, and
    say what changed since the set kept before."""
    from bot.memory_open import open_configured_memory

    memory = await open_configured_memory(settings.db)
    try:
        from adapters.notion.personas import database_id

        before_set = await memory.last_persona_set(f"notion:{database_id(settings.notion_personas_db_id or '')}")
        before = {p["name"]: p for p in (before_set.personas if before_set else [])}
        registry = load_personas(settings)
        live, note = await live_notion_personas(settings, registry, memory, background=False)
        problems = list(getattr(live.source, "problems", []))
        await live.aclose()
    finally:
        await memory.close()
    if note:
        return SyncReport(False, [note], problems)
    after = {p.name: p.model_dump(mode="json") for p in registry}
    lines = [f"+ {name} (new)" for name in after if name not in before]
    lines += [f"- {name} (no longer in Notion)" for name in before if name not in after]
    for name in (n for n in after if n in before):
        changed = sorted(k for k in after[name] if after[name][k] != before[name].get(k))
        if changed:
            lines.append(f"~ {name}: {', '.join(changed)} changed")
    return SyncReport(True, lines or [f"No changes: {len(after)} personas, as before."], problems)
