"""The composition root: the one place that knows every concrete class (cosmicpython's `bootstrap`).

    settings = load_settings()
    app = await bootstrap(settings)          # memory, provider, personas, engine
    platforms = build_platforms(app)         # bot.platforms: adapters; their outboxes registered
    await app.engine.start()                 # resumes unfinished work, now that outboxes exist
    scheduler = build_scheduler(app); scheduler.start()   # jobs post through the same outboxes
    ...
    await app.aclose()

Entry points (`bot.cli`) stay thin: they parse arguments, call these, and print. Logging with
secrets scrubbed is `bot.logs`; the work of the Notion persona commands is `bot.notion_sync`.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

from bot.settings import Settings, SettingsError
from engine.engine import Engine, EngineConfig
from engine.personas import PersonaRegistry
from engine.ports import Provider

if TYPE_CHECKING:
    from engine.crews.runner import CrewModel
    from engine.memory.store import SQLiteMemory
    from engine.personas.admin import PersonaAdmin
    from engine.personas.live import LivePersonas

log = logging.getLogger(__name__)

#: The environment variable behind each cast setting, for error messages people can act on.
CAST_SETTINGS = {"researcher": "ORCHESTRA_RESEARCHER", "critic": "ORCHESTRA_CRITIC", "planner": "ORCHESTRA_PLANNER"}


class StartupError(RuntimeError):
    """Something outside the settings' values stops start-up (a missing extra, a wrong flag, a
    token Slack refuses). `exit_code` 2 is a mistake to fix; 1 is a failure that may pass."""

    def __init__(self, message: str, *, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


# --- the pieces ---------------------------------------------------------------------------------


def load_personas(settings: Settings) -> PersonaRegistry:
    """The YAML file from ORCHESTRA_PERSONAS, or the defaults. Raises `PersonaConfigError`."""
    if settings.personas_file:
        return PersonaRegistry.from_yaml(settings.personas_file)
    return PersonaRegistry.defaults()


async def live_notion_personas(
    settings: Settings, personas: PersonaRegistry, memory, *, background: bool = True
) -> tuple["LivePersonas", str | None]:
    """Personas from the Notion database, kept current in the background (ORCHESTRA_PERSONAS_TTL).
    Notion unreachable: the last good set from the memory, or the defaults, and a note saying so.
    Notion refusing the key or the database: `StartupError` naming the setting (exit 2)."""
    from engine.personas.live import LivePersonas
    from engine.personas.source import PersonaSourceError

    live = LivePersonas(personas, persona_source(settings), memory, ttl=settings.personas_ttl,
                        required=frozenset(n.strip().lower() for n in settings.cast.values()))
    try:
        state = await live.start()
    except PersonaSourceError as e:
        await live.aclose()
        raise StartupError(str(e), exit_code=2) from None
    except BaseException:
        await live.aclose()
        raise
    if background:
        live.run_in_background()
    return live, state.note


def persona_source(settings: Settings):
    """The active persona source: Notion when configured, else the YAML file (ORCHESTRA_PERSONAS),
    else the read-only shipped defaults. The Notion library is imported only for Notion."""
    from engine.personas.source import DefaultPersonas, YamlPersonaSource

    if settings.notion_personas:
        try:
            from adapters.notion.personas import NotionPersonaSource, build_client
        except ImportError as e:
            raise StartupError(
                f"NOTION_API_KEY is set but the Notion library is missing ({e.name}): "
                "pip install 'orchestra-personas[notion]' (from a clone: pip install -e '.[notion]')"
            ) from None
        client = build_client(_secret(settings.notion_api_key) or "", base_url=settings.notion_api_url)
        return NotionPersonaSource(client, settings.notion_personas_db_id or "")
    if settings.personas_file:
        return YamlPersonaSource(settings.personas_file)
    return DefaultPersonas()


async def live_file_personas(settings: Settings, personas: PersonaRegistry, memory) -> "LivePersonas":
    """The YAML file kept current in the running bot: reloaded when its mtime changes (within about
    a second: an edit by hand or by `orchestra personas set` in another process), and written
    through by the admin commands of this process at once."""
    from engine.personas.live import LivePersonas
    from engine.personas.source import YamlPersonaSource

    live = LivePersonas(personas, YamlPersonaSource(settings.personas_file), memory, ttl=settings.personas_ttl,
                        required=frozenset(n.strip().lower() for n in settings.cast.values()))
    await live.start()  # the file loaded a moment ago (`load_personas`): its problems stopped start-up there
    live.run_in_background()
    return live


def cast_settings(settings: Settings) -> dict[str, str]:
    """ORCHESTRA_RESEARCHER/CRITIC/PLANNER -> the persona each names (archiving her is refused)."""
    return {CAST_SETTINGS[mode]: name for mode, name in settings.cast.items()}


@asynccontextmanager
async def open_persona_admin(settings: Settings):
    """The persona admin service for one CLI command: the active source and the memory (for the
    history), closed after. A running bot sees the change through its own refresh."""
    from bot.memory_open import open_configured_memory
    from engine.personas.admin import PersonaAdmin

    memory = await open_configured_memory(settings.db)
    source = None
    try:
        source = persona_source(settings)
        yield PersonaAdmin(source, memory, cast=cast_settings(settings))
    finally:
        try:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
        finally:
            await memory.close()


def check_cast(settings: Settings, personas: PersonaRegistry) -> None:
    """Every cast setting names a persona that exists: a typo must fail now, not mid-investigation."""
    problems = [
        f"{CAST_SETTINGS[mode]}: {name!r} is not a persona (known: {', '.join(personas.names)})"
        for mode, name in settings.cast.items()
        if personas.get(name) is None
    ]
    if problems:
        raise SettingsError(problems)


def engine_config(settings: Settings, personas: PersonaRegistry) -> EngineConfig:
    return EngineConfig(
        max_turns=settings.max_turns,
        max_auto_turns=settings.max_auto_turns,
        # keys, not display names: the engine looks the cast up by name
        cast={mode: personas[name].name for mode, name in settings.cast.items()},
        context_tokens=settings.context_tokens,
    )


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None


def build_model_provider(settings: Settings) -> Provider:
    """The provider for `settings.provider`; the SDK it needs is imported here, not before. At
    most ORCHESTRA_MAX_MODEL_CALLS of its calls run at once, over a pool of as many kept-alive
    connections (`engine.providers.limit` says why)."""
    from engine.providers import CallLimit, build_provider

    provider = build_provider(
        settings.provider or "offline",
        anthropic_api_key=_secret(settings.anthropic_api_key),
        anthropic_base_url=settings.anthropic_base_url,
        anthropic_model=settings.anthropic_model,
        openai_api_key=_secret(settings.openai_api_key),
        openai_base_url=settings.openai_base_url,
        openai_model=settings.openai_model,
        timeout=settings.model_timeout,
        max_retries=settings.model_max_retries,
        max_connections=settings.max_model_calls,
    )
    return CallLimit(provider, settings.max_model_calls)


async def warm_up(provider: Provider) -> None:
    """Everything the first model call would do once (SDK imports, pydantic types), done now, so
    that a burst arriving the moment the bot says it is ready is served like any other. Never
    stops start-up: a provider that cannot rehearse only pays on its first real call."""
    rehearse = getattr(provider, "warm_up", None)
    if rehearse is None:
        return
    try:
        await rehearse()
    except Exception:  # noqa: BLE001 - a cost moved, not a failure
        log.debug("model warm-up failed; the first call pays for it", exc_info=True)


def crew_model(settings: Settings, provider: Provider) -> "CrewModel":
    """The model crews use: the personas' own settings (offline: a marked rehearsal)."""
    from engine.crews.runner import CrewModel

    kind = provider.name if provider.name in ("anthropic", "openai") else "offline"
    return CrewModel(
        provider=kind,
        model={"anthropic": settings.anthropic_model, "openai": settings.openai_model}.get(kind, "offline"),
        api_key=_secret(settings.anthropic_api_key if kind == "anthropic" else settings.openai_api_key),
        base_url=settings.anthropic_base_url if kind == "anthropic" else settings.openai_base_url,
        timeout=settings.model_timeout,
        crew_timeout=settings.crew_timeout.total_seconds(),
    )


def offline_provider() -> Provider:
    from engine.providers import OfflineProvider

    return OfflineProvider()


# --- the application ----------------------------------------------------------------------------


@dataclass
class App:
    settings: Settings
    memory: "SQLiteMemory"
    provider: Provider
    personas: PersonaRegistry
    engine: Engine
    #: Closed after the engine stops, so its last posts still have a connection (Discord's client).
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    live_personas: "LivePersonas | None" = None  # personas from Notion or the file, refreshed in the background
    personas_note: str | None = None  # for the banner: why the personas are not fresh from their source

    @property
    def persona_admin(self) -> "PersonaAdmin":
        """create / set / archive / history, written to the active source and in use at once."""
        from engine.personas.admin import PersonaAdmin
        from engine.personas.source import DefaultPersonas

        source = self.live_personas.source if self.live_personas is not None else DefaultPersonas()
        return PersonaAdmin(source, self.memory, live=self.live_personas, cast=cast_settings(self.settings))

    async def aclose(self, grace: float | None = None) -> None:
        """Let running work finish (at most `grace` seconds; the rest resumes on the next start),
        then close the platforms' connections, the provider and the memory."""
        try:
            if self.live_personas is not None:
                await self.live_personas.aclose()
            await self.engine.stop(grace)
        finally:
            try:
                for close in reversed(self.on_close):
                    try:
                        await close()
                    except Exception:  # noqa: BLE001 - shutting down: note it and go on
                        log.warning("closing a platform connection failed", exc_info=True)
                await self.provider.aclose()
            finally:
                await self.memory.close()


async def bootstrap(settings: Settings, *, provider: Provider | None = None) -> App:
    """Build the application. `provider` overrides the configured one (queries that never call a
    model use the offline provider, so they do not pay for importing an SDK).

    Raises `SettingsError` (cast naming an unknown persona; a memory file that cannot be used, or
    was written by a newer Orchestra), `PersonaConfigError` (personas file).
    """
    from bot.memory_open import open_configured_memory

    personas = load_personas(settings)
    if not settings.notion_personas:  # Notion's personas are checked once loaded, below
        check_cast(settings, personas)
    memory = await open_configured_memory(settings.db)  # SettingsError: named, what to check, no password
    live, note = None, None
    try:
        if settings.notion_personas:
            live, note = await live_notion_personas(settings, personas, memory)
            check_cast(settings, personas)
        elif settings.personas_file:
            live = await live_file_personas(settings, personas, memory)
        config = engine_config(settings, personas)
        model = provider or build_model_provider(settings)
        await warm_up(model)
    except BaseException:
        if live is not None:
            await live.aclose()
        await memory.close()
        raise
    from engine.replicas import replica_for  # one of several replicas when the memory is shared (PostgreSQL)

    engine = Engine(memory, model, personas, config, crews=crew_model(settings, model),
                    replica=replica_for(memory, lease=settings.replica_lease))
    return App(settings=settings, memory=memory, provider=model, personas=personas, engine=engine,
               live_personas=live, personas_note=note)


async def notion_personas_now(settings: Settings, personas: PersonaRegistry) -> PersonaRegistry:
    """The personas from Notion once (or the last good set while it is away), for commands that
    show them: the memory is opened only to read and keep that set."""
    from bot.memory_open import open_configured_memory

    memory = await open_configured_memory(settings.db)
    try:
        live, _ = await live_notion_personas(settings, personas, memory, background=False)
        await live.aclose()
    finally:
        await memory.close()
    return personas


def persona_engine(settings: Settings) -> Engine:
    """An engine for persona queries only (`orchestra personas`): no memory file is opened,
    unless the personas come from Notion (where the last good set is kept)."""
    personas = load_personas(settings)
    if settings.notion_personas:
        personas = asyncio.run(notion_personas_now(settings, personas))
    check_cast(settings, personas)
    return Engine(None, offline_provider(), personas, engine_config(settings, personas))


# --- scheduled jobs -----------------------------------------------------------------------------


def build_scheduler(app: App, clock=None):
    """The scheduled jobs (`bot.jobs`) over this app's memory. `start()` it in the running loop
    once the platforms' outboxes are registered and the engine started; `stop()` it first on
    shutdown, so no job posts into a platform that is closing."""
    from bot.jobs import build_jobs
    from bot.scheduler import Scheduler

    return Scheduler(app.memory, build_jobs(app), clock)
