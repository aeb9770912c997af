"""Personas in a Notion database, through notion-client 3.x (Notion API 2025-09-03).

In that API a database's rows live in its data source: the database named by
NOTION_PERSONAS_DB_ID (its id, or the URL people copy from Notion) is retrieved once to find its
data source, whose pages are then queried page by page. notion-client retries 429 (honouring
Retry-After) and, for reads, 5xx: its retry options are set in `build_client`; no loop here.

One page is one persona. Properties (see `PROPERTIES`): Name (title) is the persona's name;
every other one may be missing or empty, and then falls back to a clear default with a warning
naming the page. A page that does not validate is reported by its name and skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from notion_client import AsyncClient
from notion_client.client import RetryOptions
from notion_client.errors import APIErrorCode, APIResponseError, HTTPResponseError, NotionClientErrorBase, RequestTimeoutError
from notion_client.helpers import extract_database_id

from adapters.notion.properties import PROPERTIES, database_schema, page_label, page_properties, page_settings, rich_text
from engine.personas.model import Persona
from engine.personas.source import PersonaSourceError, check_persona

__all__ = ["PROPERTIES", "NotionPersonaSource", "build_client", "create_database", "database_id", "page_properties"]

log = logging.getLogger(__name__)


def build_client(api_key: str, *, base_url: str | None = None, timeout: float = 10.0, max_retries: int = 2) -> AsyncClient:
    """notion-client's AsyncClient, with its own retries (429 after Retry-After, capped so a
    refresh never sleeps for a minute) and a logger of ours, not its stdout console logger."""
    options: dict[str, Any] = {
        "auth": api_key,
        "timeout_ms": int(timeout * 1000),
        "retry": RetryOptions(max_retries=max_retries, initial_retry_delay_ms=250, max_retry_delay_ms=2000),
        "logger": logging.getLogger("orchestra.notion.client"),
        "log_level": logging.ERROR,  # it logs every failed attempt; we log an outage once
    }
    if base_url:
        options["base_url"] = base_url.rstrip("/").removesuffix("/v1")
    return AsyncClient(**options)


def database_id(value: str) -> str | None:
    """The database id in NOTION_PERSONAS_DB_ID: an id (with or without dashes) or a Notion URL."""
    return extract_database_id(value)


# --- the source --------------------------------------------------------------------------------------


def _source_error(e: Exception, what: str) -> PersonaSourceError:
    """`what`: the object asked for, as a person named it ("the database NOTION_PERSONAS_DB_ID=...")."""
    """A safe message for what went wrong (details go to the debug log)."""
    log.debug("Notion request failed", exc_info=e)
    if isinstance(e, APIResponseError):
        if e.code == APIErrorCode.Unauthorized:
            return PersonaSourceError("Notion refused NOTION_API_KEY: check the integration's secret "
                                      "(notion.so/profile/integrations)", transient=False)
        if e.code in (APIErrorCode.ObjectNotFound, APIErrorCode.RestrictedResource):
            return PersonaSourceError(f"Notion cannot find {what}: check the id, and share it with the "
                                      "integration (in Notion: ••• → Connections)",
                                      transient=False)
        if e.code == APIErrorCode.RateLimited:
            return PersonaSourceError("Notion cannot be reached (rate-limited: 429)")
        if e.code == APIErrorCode.ValidationError:
            return PersonaSourceError(f"Notion did not accept the request: {e}", transient=False)
        return PersonaSourceError(f"Notion cannot be reached (it answered {e.status})")
    if isinstance(e, RequestTimeoutError):
        return PersonaSourceError("Notion cannot be reached (no answer in time)")
    if isinstance(e, HTTPResponseError):
        return PersonaSourceError(f"Notion cannot be reached (it answered {e.status})")
    if isinstance(e, NotionClientErrorBase):
        return PersonaSourceError("Notion did not accept the request", transient=False)
    return PersonaSourceError("Notion cannot be reached (no connection)")


class NotionPersonaSource:
    """The personas in a Notion database (one page each). `problems` lists the pages skipped at
    the last load, `skipped` their persona names, `warnings` the defaults used (one line per page;
    `engine.personas.live` logs them when they change, not on every refresh)."""

    writable = True

    def __init__(self, client: AsyncClient, database: str):
        self.client = client
        self.database = database.strip()
        self._database_id = database_id(self.database)
        self.data_source_id: str | None = None
        # the database as configured, not its data source: a bot restarted while Notion is
        # away must find the set it kept under this name without asking Notion
        self.name = f"notion:{self._database_id or self.database}"
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.skipped: set[str] = set()
        self._pages: dict[str, str] = {}  # persona name -> page id
        self._loaded = False

    async def _call(self, coro) -> Any:
        import httpx

        try:
            return await coro
        except (NotionClientErrorBase, httpx.HTTPError, OSError) as e:
            raise _source_error(e, f"the database NOTION_PERSONAS_DB_ID={self.database}") from None

    async def resolve(self) -> str:
        """The data source that holds the rows (the database's first); a data source id works too."""
        if self.data_source_id is not None:
            return self.data_source_id
        if self._database_id is None:
            raise PersonaSourceError(f"NOTION_PERSONAS_DB_ID={self.database!r} is not a Notion database id or URL: "
                                     "copy the id from the database's URL (the 32 characters before ?v=)",
                                     transient=False)
        try:
            db = await self._call(self.client.databases.retrieve(database_id=self._database_id))
            sources = db.get("data_sources") or []
            if not sources:
                raise PersonaSourceError(f"the Notion database {self._database_id} has no data source", transient=False)
            self.data_source_id = sources[0]["id"]
        except PersonaSourceError as e:
            if e.transient:
                raise
            try:  # the id of a data source ("copy link to data source") is fine as well
                ds = await self._call(self.client.data_sources.retrieve(data_source_id=self._database_id))
            except PersonaSourceError:
                raise e from None
            self.data_source_id = ds["id"]
        return self.data_source_id

    async def pages(self) -> list[dict[str, Any]]:
        """Every page of the data source: the query is followed cursor by cursor to the end."""
        source = await self.resolve()
        pages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {"data_source_id": source, "page_size": 100}
            if cursor:
                kwargs["start_cursor"] = cursor
            answer = await self._call(self.client.data_sources.query(**kwargs))
            pages.extend(p for p in answer.get("results") or [] if p.get("object", "page") == "page")
            cursor = answer.get("next_cursor")
            if not answer.get("has_more") or not cursor:
                return pages

    async def load(self) -> list[Persona]:
        problems: list[str] = []
        warnings: list[str] = []
        skipped: set[str] = set()
        candidates: list[tuple[dict[str, Any], str, Persona]] = []
        for page in await self.pages():
            if page.get("in_trash") or page.get("archived"):
                continue
            label = page_label(page)
            settings = page_settings(page, warnings)
            if not settings["name"]:
                problems.append(f"{label}: the page has no Name; skipped")
                continue
            persona, found = check_persona(settings, label)
            if persona is None:
                problems.extend(f"{p}; skipped" if i == len(found) - 1 else p for i, p in enumerate(found))
                skipped.add(settings["name"])
                continue
            candidates.append((page, label, persona))
        seen: dict[str, list[str]] = {}  # name or display name -> the pages (ids) using it
        for page, _, persona in candidates:
            for alias in {persona.name, persona.display_name.lower()}:
                seen.setdefault(alias, []).append(page["id"])
        personas: list[Persona] = []
        pages: dict[str, str] = {}
        for page, label, persona in candidates:
            if any(len(seen[alias]) > 1 for alias in {persona.name, persona.display_name.lower()}):
                problems.append(f"{label}: the name {persona.name!r} is used by more than one page; skipped "
                                "(give each persona its own name)")
                skipped.add(persona.name)
                continue
            personas.append(persona)
            pages[persona.name] = page["id"]
        self.problems, self.warnings, self.skipped, self._pages = problems, warnings, skipped, pages
        self._loaded = True
        return personas

    async def save(self, persona: Persona) -> None:
        if not self._loaded:
            await self.load()
        properties = page_properties(persona)
        page = self._pages.get(persona.name)
        if page is None:
            answer = await self._call(self.client.pages.create(
                parent={"type": "data_source_id", "data_source_id": await self.resolve()}, properties=properties))
            self._pages[persona.name] = answer["id"]
        else:
            await self._call(self.client.pages.update(page_id=page, properties=properties))

    async def archive(self, name: str) -> None:
        key = name.strip().lower()
        if key not in self._pages:
            await self.load()  # perhaps created since
        page = self._pages.get(key)
        if page is None:
            raise PersonaSourceError(f"the Notion database has no persona called {name!r}", transient=False)
        await self._call(self.client.pages.update(page_id=page, in_trash=True))
        del self._pages[key]

    async def aclose(self) -> None:
        await self.client.aclose()


async def create_database(client: AsyncClient, parent_page: str, personas: list[Persona], *,
                          title: str = "Orchestra personas") -> tuple[str, str]:
    """A new personas database under page `parent_page` (id or URL), its data source made with
    every property, filled with `personas`. Returns (database id, data source id); what
    `orchestra personas init-notion --parent PAGE` calls."""
    from notion_client.helpers import extract_page_id

    parent = extract_page_id(parent_page) or parent_page
    try:
        db = await client.databases.create(
            parent={"type": "page_id", "page_id": parent},
            title=rich_text(title),
            initial_data_source={"properties": database_schema()},
        )
    except Exception as e:  # noqa: BLE001 - the same safe messages as reading
        raise _source_error(e, f"the page {parent_page}") from None
    source = NotionPersonaSource(client, db["id"])
    source.data_source_id = db["data_sources"][0]["id"]
    source._loaded = True  # a new database: nothing to read first
    for persona in personas:
        await source.save(persona)
    return db["id"], source.data_source_id
