"""Personas in Notion: notion-client 3.x against the local Notion (tests/servers/notion_api.py),
a real SQLite memory, the real engine; and the YAML source writing back with its comments.

What people must get: every persona in the database, whatever its length or the number of pages
of the query; clear defaults (with a warning naming the page) for what is left empty; an edit in
Notion reaching the running bot within the time to live; and a Notion outage (rate limits, 5xx,
nothing listening) that changes nothing users see, logged once, also across a restart.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from importlib import resources
from pathlib import Path

import pytest

from adapters.notion.personas import NotionPersonaSource, build_client, create_database, page_properties
from bot.bootstrap import StartupError, bootstrap
from bot.logs import configure_logging, settings_secrets
from bot.settings import SettingsError, load_settings
from engine.memory.open import open_memory
from engine.memory.port import Memory
from engine.models import Task
from engine.personas import PersonaRegistry
from engine.personas.live import LivePersonas
from engine.personas.source import DefaultPersonas, PersonaSourceError, YamlPersonaSource
from tests.fakes import FakeOutbox, ScriptedProvider
from tests.memory_backends import memory_db, pg_server  # noqa: F401 - fixtures
from tests.servers.notion_api import API_VERSION, NotionServer, multi_select, number, select, text, title
from tests.test_cli import clean_env

pytest_plugins = ["tests.servers.fixtures"]

TOKEN = "secret_test_notion_token"  # the local Notion's token (fixture `notion_server`)
from tests.settings_env import clean_settings_env  # noqa: F401 - autouse: no settings from this machine




def full_page(persona) -> dict:
    """A page as `page_properties` writes it, in the shape Notion answers (types named)."""
    out = {}
    for name, value in page_properties(persona).items():
        kind = next(iter(value))
        out[name] = {"type": kind, **value}
    return out


def seeded(server: NotionServer, personas=None) -> tuple[str, str, dict[str, str]]:
    """A database holding the default personas (or `personas`): (db id, data source id, name -> page)."""
    db, ds = server.add_database()
    pages = {p.name: server.add_page(ds, full_page(p)) for p in personas or PersonaRegistry.defaults()}
    return db, ds, pages


def source_for(server: NotionServer, db: str) -> NotionPersonaSource:
    return NotionPersonaSource(build_client(TOKEN, base_url=server.url), db)


async def wait_until(predicate, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


# --- reading ------------------------------------------------------------------------------------------


async def test_every_page_of_a_paginated_query_is_read(tmp_path):
    async with NotionServer(token=TOKEN, max_page_size=2) as server:
        defaults = list(PersonaRegistry.defaults())
        extra = [defaults[1].model_copy(update={"name": f"analyst{i}", "display_name": f"Analyst {i}"}) for i in range(4)]
        db, ds, _ = seeded(server, [*defaults, *extra])
        source = source_for(server, db)
        try:
            personas = await source.load()
        finally:
            await source.aclose()
    assert [p.name for p in personas] == ["cherry", "sophia", "karen", "analyst0", "analyst1", "analyst2", "analyst3"]
    assert personas[:3] == defaults  # every field, as written
    queries = server.of("POST", f"/v1/data_sources/{ds}/query")
    assert [q.body.get("start_cursor") is not None for q in queries] == [False, True, True, True]
    assert server.of("GET", f"/v1/databases/{db}")  # the data source was resolved from the database
    assert all(r.headers["Notion-Version"] == API_VERSION and r.headers["Authorization"] == f"Bearer {TOKEN}"
               for r in server.requests)
    assert source.name == f"notion:{db}" and source.data_source_id == ds


async def test_the_database_url_people_copy_works_as_the_id(notion_server):
    db, ds, _ = seeded(notion_server)
    source = source_for(notion_server, f"https://www.notion.so/acme/Personas-{db.replace('-', '')}?v=0123456789abcdef0123456789abcdef")
    try:
        assert len(await source.load()) == 3
    finally:
        await source.aclose()
    assert notion_server.requests[0].path == f"/v1/databases/{db}"


async def test_rich_text_in_many_segments_is_read_whole(notion_server):
    db, ds = notion_server.add_database()
    backstory = "Sophia reads logs for a living. " * 200  # 6400 characters
    template = "You are [name], [role].\n[backstory]\n\nPersonality: [traits]\n[style]\n\n[mode]\n[memory]\nTask: [task]"
    notion_server.add_page(ds, {
        "Name": title("Sophia", segments=2), "Role": text("Research and data lead", segments=4),
        "Backstory": text(backstory, segments=7), "Prompt Template": text(template, segments=5),
        **{t: number(0.6) for t in ("Openness", "Conscientiousness", "Extraversion", "Agreeableness", "Neuroticism",
                                    "Humor", "Formality")},
        "Domains": multi_select("research", "data"), "Colour": select("cyan"),
    })
    source = source_for(notion_server, db)
    try:
        [sophia] = await source.load()
    finally:
        await source.aclose()
    assert sophia.name == "sophia" and sophia.display_name == "Sophia"
    assert sophia.role == "Research and data lead" and sophia.backstory == backstory.strip()
    assert sophia.template == template and sophia.domains == ["research", "data"] and sophia.color == "cyan"
    assert source.warnings == []


async def test_empty_or_missing_properties_fall_back_to_defaults_with_a_warning_naming_the_page(notion_server):
    db, ds = notion_server.add_database()
    notion_server.add_page(ds, {"Name": title("Eve"), "Role": text(""), "Openness": number(0.9)})
    source = source_for(notion_server, db)
    try:
        [eve] = await source.load()
    finally:
        await source.aclose()
    assert eve.name == "eve" and eve.display_name == "Eve" and eve.role == "Team member"
    assert eve.traits.openness == 0.9 and eve.traits.neuroticism == 0.5 and eve.humor == 0.5
    assert "[name]" in eve.template and eve.backstory == ""
    [warning] = source.warnings
    assert warning.startswith("Notion page 'Eve': using defaults for")
    assert "Role (empty)" in warning and "Backstory (missing)" in warning and "Openness" not in warning


async def test_a_page_that_does_not_validate_is_skipped_by_name(notion_server):
    db, ds, pages = seeded(notion_server)
    notion_server.edit_page(pages["sophia"], Openness=number(1.5))
    notion_server.add_page(ds, {"Name": title("Karen"), "Role": text("A second Karen")})
    notion_server.add_page(ds, {"Name": title("Zed"), "Prompt Template": text("Hi [nmae]")})
    notion_server.add_page(ds, {"Name": title("")})
    source = source_for(notion_server, db)
    try:
        personas = await source.load()
    finally:
        await source.aclose()
    assert [p.name for p in personas] == ["cherry"]
    said = "\n".join(source.problems)
    assert "Notion page 'Sophia': traits.openness: 1.5 is out of range" in said
    assert "Notion page 'Karen': the name 'karen' is used by more than one page" in said
    assert "Notion page 'Zed'" in said and "[nmae]" in said
    assert "has no Name" in said
    assert source.skipped == {"sophia", "karen", "zed"}


# --- writing ------------------------------------------------------------------------------------------


async def test_a_new_database_is_created_with_its_data_source_and_filled(notion_server):
    client = build_client(TOKEN, base_url=notion_server.url)
    long_story = "x" * 4500
    personas = list(PersonaRegistry.defaults())
    personas[0] = personas[0].model_copy(update={"backstory": long_story})
    try:
        db, ds = await create_database(client, "https://www.notion.so/Team-" + "a" * 32, personas)
        source = NotionPersonaSource(client, db)
        assert await source.load() == personas  # lossless, the long text included
        created = notion_server.of("POST", "/v1/databases")[0].body
        assert created["parent"] == {"type": "page_id", "page_id": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"}
        assert set(created["initial_data_source"]["properties"]) >= {"Name", "Role", "Backstory", "Openness", "Prompt Template"}
        sent = notion_server.of("POST", "/v1/pages")[0].body["properties"]["Backstory"]["rich_text"]
        assert [len(s["text"]["content"]) for s in sent] == [2000, 2000, 500]

        changed = personas[1].model_copy(update={"role": "Head of research"})
        await source.save(changed)
        assert notion_server.of("PATCH", "/v1/pages/")[-1].body["properties"]["Role"]["rich_text"][0]["text"]["content"] == "Head of research"
        await source.archive("Karen")
        assert notion_server.of("PATCH", "/v1/pages/")[-1].body == {"in_trash": True}
        assert [p.role for p in await source.load()] == [personas[0].role, "Head of research"]
        with pytest.raises(PersonaSourceError, match="longer than Notion takes"):
            await source.save(changed.model_copy(update={"backstory": "y" * 200_001}))
    finally:
        await client.aclose()


async def test_refusals_are_named_for_a_person_to_fix(notion_server):
    db, _, _ = seeded(notion_server)
    wrong_key = NotionPersonaSource(build_client("secret_wrong", base_url=notion_server.url), db)
    unshared = source_for(notion_server, "0" * 32)
    try:
        with pytest.raises(PersonaSourceError, match="refused NOTION_API_KEY") as refused:
            await wrong_key.load()
        assert not refused.value.transient
        with pytest.raises(PersonaSourceError, match="NOTION_PERSONAS_DB_ID=0+: check the id, and share it with the integration") as missing:
            await unshared.load()
        assert not missing.value.transient and "127.0.0.1" not in str(missing.value)
    finally:
        await wrong_key.aclose()
        await unshared.aclose()


# --- live: the running engine -------------------------------------------------------------------------


def notion_settings(tmp_path, server: NotionServer, db: str, **extra):
    return load_settings(db=tmp_path / "memory.db", notion_api_key=TOKEN, notion_personas_db_id=db,
                         notion_api_url=server.url, **extra)


def message(text_: str, n: int) -> Task:
    return Task(platform="local", workspace="local", channel="terminal", user="ada", text=text_,
                event_id=f"local:{n}", message_id=f"m{n}", thread=f"m{n}")


async def test_an_edit_in_notion_reaches_the_running_engine_within_the_ttl(tmp_path, notion_server):
    db, ds, pages = seeded(notion_server)
    provider = ScriptedProvider(fallback=lambda request: "Noted.")
    app = await bootstrap(notion_settings(tmp_path, notion_server, db, personas_ttl=0.2), provider=provider)
    try:
        outbox = FakeOutbox()
        app.engine.register_outbox("local", outbox)
        await app.engine.start()
        assert app.personas_note is None and app.live_personas is not None
        await app.engine.submit(message("sophia, how are signups?", 1))
        await app.engine.wait_idle()
        assert "Research and data lead" in provider.requests[-1].system

        notion_server.edit_page(pages["sophia"], Role=text("Chief data scientist"), Display_Name=text("Sophie"))
        await wait_until(lambda: app.personas["sophia"].role == "Chief data scientist")

        notion_server.latency = 30  # the next refresh hangs: messages must not wait for it
        asked = len(notion_server.requests)
        await wait_until(lambda: len(notion_server.requests) > asked)
        assert not app.live_personas._inflight.done()
        await app.engine.submit(message("sophie, and now?", 2))
        await app.engine.wait_idle()
        assert "Chief data scientist" in provider.requests[-1].system
        assert outbox.posts[-1].voice.display_name == "Sophie"
        assert not app.live_personas._inflight.done()  # answered while Notion was still busy
    finally:
        notion_server.latency = 0
        await app.aclose()
    async with _memory(tmp_path) as memory:
        stored = await memory.last_persona_set(f"notion:{db}")
    assert {p["name"]: p["role"] for p in stored.personas}["sophia"] == "Chief data scientist"


class _memory:
    def __init__(self, tmp_path):
        self.path = tmp_path / "memory.db"

    async def __aenter__(self) -> Memory:
        self.memory = await open_memory(self.path)
        return self.memory

    async def __aexit__(self, *exc):
        await self.memory.close()


@pytest.mark.parametrize("outage", ["rate limited", "5xx", "down", "slow"])
async def test_an_outage_changes_nothing_users_see_and_is_logged_once(tmp_path, notion_server, caplog, outage):
    db, ds, pages = seeded(notion_server)
    async with _memory(tmp_path) as memory:
        registry = PersonaRegistry.defaults()
        source = NotionPersonaSource(build_client(TOKEN, base_url=notion_server.url, timeout=0.3, max_retries=1), db)
        live = LivePersonas(registry, source, memory, ttl=60)
        try:
            assert (await live.start()).origin == "source"
            before = list(registry)
            caplog.set_level(logging.WARNING, logger="engine.personas.live")
            if outage == "rate limited":
                notion_server.rate_limit(times=1000, retry_after=0)
            elif outage == "5xx":
                notion_server.fail(times=1000, status=503)
            elif outage == "down":
                await notion_server.go_down()
            else:
                notion_server.latency = 5
            notion_server.edit_page(pages["karen"], Role=text("changed while away"))
            for _ in range(4):
                assert await live.refresh() is False
                assert list(registry) == before  # nothing changed for users
                assert registry.split_addressee("karen, hi")[0].name == "karen"
            if outage == "rate limited":
                assert any(r.status == 429 for r in notion_server.requests)
            lines = [r.getMessage() for r in caplog.records if r.name == "engine.personas.live"]
            assert len(lines) == 1 and "Notion cannot be reached" in lines[0], lines
            assert TOKEN not in lines[0] and "Traceback" not in caplog.text

            notion_server.rate_limit(0)
            notion_server.fail(0)
            notion_server.latency = 0
            await notion_server.come_back()
            assert await live.refresh() is True
            assert registry["karen"].role == "changed while away"
            lines = [r.getMessage() for r in caplog.records if r.name == "engine.personas.live"]
            assert len(lines) == 2 and "answers again" in lines[1]
        finally:
            await live.aclose()


async def test_concurrent_refreshes_make_one_notion_call(tmp_path, notion_server):
    db, ds, _ = seeded(notion_server)
    async with _memory(tmp_path) as memory:
        live = LivePersonas(PersonaRegistry.defaults(), source_for(notion_server, db), memory, ttl=60)
        try:
            await live.start()
            notion_server.latency = 0.2
            queries = len(notion_server.of("POST", f"/v1/data_sources/{ds}/query"))
            results = await asyncio.gather(*(live.refresh() for _ in range(20)))
            for _ in range(20):
                live.refresh_if_stale()  # fresh: starts nothing
            assert results == [True] * 20
            assert len(notion_server.of("POST", f"/v1/data_sources/{ds}/query")) == queries + 1
        finally:
            await live.aclose()


async def test_a_skipped_page_keeps_the_last_good_version_of_its_persona(memory_db, notion_server):
    db, ds, pages = seeded(notion_server)
    async with _memory_at(memory_db) as memory:
        registry = PersonaRegistry.defaults()
        live = LivePersonas(registry, source_for(notion_server, db), memory, ttl=60)
        try:
            await live.start()
            notion_server.edit_page(pages["sophia"], Openness=number(7), Role=text("Broken"))
            notion_server.edit_page(pages["cherry"], Role=text("Chief of staff"))
            assert await live.refresh() is True
            assert registry["sophia"].role == "Research and data lead" and registry["sophia"].traits.openness == 0.9
            assert registry["cherry"].role == "Chief of staff"
        finally:
            await live.aclose()
        # a restart while the page is still broken: the version kept in the memory is used
        registry = PersonaRegistry.defaults()
        live = LivePersonas(registry, source_for(notion_server, db), memory, ttl=60)
        try:
            notion_server.edit_page(pages["karen"], Humor=number(-1))
            notion_server.edit_page(pages["cherry"], Role=text("COO"))
            assert (await live.start()).origin == "source"
            assert registry["sophia"].role == "Research and data lead" and registry["cherry"].role == "COO"
            assert registry["karen"] == PersonaRegistry.defaults()["karen"]
        finally:
            await live.aclose()


async def test_a_restart_during_an_outage_serves_the_last_good_set_from_sqlite(tmp_path, notion_server):
    db, ds, pages = seeded(notion_server)
    notion_server.edit_page(pages["karen"], Role=text("Head of sales"))
    app = await bootstrap(notion_settings(tmp_path, notion_server, db))
    await app.aclose()

    await notion_server.go_down()
    app = await bootstrap(notion_settings(tmp_path, notion_server, db))
    try:
        assert app.personas["karen"].role == "Head of sales"
        assert "Notion cannot be reached" in app.personas_note and "last personas loaded" in app.personas_note
    finally:
        await app.aclose()

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    app = await bootstrap(notion_settings(fresh, notion_server, db))
    try:  # nothing kept yet: the defaults, and the banner says so
        assert list(app.personas) == list(PersonaRegistry.defaults())
        assert "using the default personas" in app.personas_note
    finally:
        await app.aclose()


async def test_a_refused_key_stops_start_up_naming_the_setting(tmp_path, notion_server):
    db, _, _ = seeded(notion_server)
    settings = load_settings(db=tmp_path / "memory.db", notion_api_key="secret_not_the_one", notion_personas_db_id=db,
                             notion_api_url=notion_server.url)
    with pytest.raises(StartupError, match="NOTION_API_KEY") as stopped:
        await bootstrap(settings)
    assert stopped.value.exit_code == 2


# --- settings and start-up ----------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "missing"), [
    ({"NOTION_API_KEY": TOKEN}, "NOTION_PERSONAS_DB_ID"),
    ({"NOTION_PERSONAS_DB_ID": "0123456789abcdef0123456789abcdef"}, "NOTION_API_KEY"),
])
async def test_one_notion_setting_without_the_other_stops_start_up_with_exit_2(tmp_path, given, missing):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "investigate", "why?", cwd=tmp_path, env=clean_env(tmp_path, **given),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    said = err.decode()
    assert said.startswith("orchestra: ") and f"is set but {missing} is not" in said and "Traceback" not in said
    assert TOKEN not in said


def test_a_database_id_that_is_no_id_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("NOTION_API_KEY", TOKEN)
    monkeypatch.setenv("NOTION_PERSONAS_DB_ID", "my personas")
    with pytest.raises(SettingsError, match="NOTION_PERSONAS_DB_ID: 'my personas' is not a Notion database id"):
        load_settings()
    monkeypatch.setenv("NOTION_PERSONAS_DB_ID", "https://www.notion.so/acme/Personas-0123456789abcdef0123456789abcdef?v=1")
    monkeypatch.setenv("ORCHESTRA_PERSONAS_TTL", "30")
    settings = load_settings()
    assert settings.notion_personas and settings.personas_ttl == 30


def test_the_notion_key_never_reaches_the_log(tmp_path, monkeypatch):
    import io

    monkeypatch.setenv("NOTION_API_KEY", "ntn_4567890123abcdefSECRET")
    monkeypatch.setenv("NOTION_PERSONAS_DB_ID", "0123456789abcdef0123456789abcdef")
    settings = load_settings(db=tmp_path / "m.db")
    assert "ntn_4567890123abcdefSECRET" in settings_secrets(settings)
    stream = io.StringIO()
    configure_logging(settings, stream)
    logging.getLogger("orchestra.test").warning("calling Notion with %s and secret_abcdefghijkl", "ntn_4567890123abcdefSECRET")
    assert "SECRET" not in stream.getvalue() and "abcdefghijkl" not in stream.getvalue()


async def test_the_banner_says_where_the_personas_come_from(tmp_path, notion_server):
    """A real `orchestra` process (the terminal chat): from Notion when it answers; the defaults,
    and why, when it does not; the person can chat either way."""
    db, ds, pages = seeded(notion_server)
    notion_server.edit_page(pages["sophia"], Display_Name=text("Sophie"))
    env = clean_env(tmp_path, NOTION_API_KEY=TOKEN, NOTION_PERSONAS_DB_ID=db, NOTION_API_URL=notion_server.url)

    async def run() -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", cwd=tmp_path, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(b"@sophie hello\n"), 60)
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await run()
    assert code == 0, err
    assert "Sophie" in out and "(from Notion)" in out and "cannot be reached" not in out

    await notion_server.go_down()
    code, out, err = await run()
    assert code == 0, err
    assert "Sophie" in out and "Notion cannot be reached" in out and "last personas loaded" in out
    assert TOKEN not in out + err and "Traceback" not in err


# --- the YAML source ----------------------------------------------------------------------------------


async def test_the_yaml_source_writes_back_keeping_comments_and_order(tmp_path):
    path = tmp_path / "personas.yaml"
    shutil.copy(resources.files("engine.personas").joinpath("defaults.yaml"), path)
    original = path.read_text(encoding="utf-8")
    comments = [line for line in original.splitlines() if line.lstrip().startswith("#") or "  # " in line]
    source = YamlPersonaSource(path)
    assert source.name == f"yaml:{path}" and source.writable

    personas = await source.load()
    sophia = personas[1].model_copy(update={"role": "Head of research", "humor": 0.3, "model": "gpt-5.4",
                                            "backstory": "Line one.\nLine two."})
    await source.save(sophia)
    dora = personas[2].model_copy(update={"name": "dora", "display_name": "Dora"})
    await source.save(dora)

    text_ = path.read_text(encoding="utf-8")
    for line in comments:
        assert line in text_, line
    assert text_.index("cherry:") < text_.index("sophia:") < text_.index("karen:") < text_.index("dora:")
    assert "backstory: |-" in text_ and "url: null" in text_
    again = await source.load()
    assert again[1] == sophia and again[3] == dora and again[0] == personas[0] and again[2] == personas[2]

    await source.archive("Dora")
    assert [p.name for p in await source.load()] == ["cherry", "sophia", "karen"]
    with pytest.raises(PersonaSourceError, match="would not load"):
        await source.save(sophia.model_copy(update={"template": "Hi [nmae]"}))
    assert [p.role for p in await source.load()][1] == "Head of research"  # nothing written


async def test_the_shipped_defaults_are_read_only():
    source = DefaultPersonas()
    assert not source.writable and len(await source.load()) == 3
    with pytest.raises(PersonaSourceError, match="ORCHESTRA_PERSONAS"):
        await source.save((await source.load())[0])


async def test_a_version_3_memory_opens_and_gains_the_persona_tables(tmp_path):
    import sqlite3

    from engine.memory.schema import MIGRATIONS, SCHEMA_V1, SCHEMA_VERSION

    path = tmp_path / "v3.db"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA_V1 + MIGRATIONS[2] + MIGRATIONS[3] + "PRAGMA user_version = 3;")
    con.close()
    async with _memory_at(path) as memory:
        assert (await memory._rows("PRAGMA user_version"))[0][0] == SCHEMA_VERSION
        await memory.save_persona_set("notion:x", [{"name": "a"}])
        assert (await memory.last_persona_set("notion:x")).personas == [{"name": "a"}]
        await memory.record_persona_change("sophia", source="yaml:p", actor="U1", action="update",
                                           changes={"role": ["A", "B"]})
        [change] = await memory.persona_changes("Sophia")
        assert change.actor == "U1" and change.changes == {"role": ["A", "B"]} and change.action == "update"


class _memory_at(_memory):
    def __init__(self, path: Path | str):  # a SQLite file or a PostgreSQL URL
        self.path = path


async def test_personas_list_and_show_give_the_personas_in_use_from_notion(tmp_path, notion_server):
    db, ds, pages = seeded(notion_server)
    notion_server.edit_page(pages["karen"], Role=text("Head of sales"))
    env = clean_env(tmp_path, NOTION_API_KEY=TOKEN, NOTION_PERSONAS_DB_ID=db, NOTION_API_URL=notion_server.url)

    async def personas(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "personas", *args, cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    assert "Head of sales" in await personas("list")
    await notion_server.go_down()
    assert "Head of sales" in await personas("show", "karen")  # the last good set, kept in the memory


async def cli(tmp_path, *args: str, **env_) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=tmp_path, env=clean_env(tmp_path, **env_),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_init_notion_creates_the_database_and_sync_says_what_changed(tmp_path, notion_server):
    code, out, err = await cli(tmp_path, "personas", "init-notion", "--parent", "b" * 32,
                               NOTION_API_KEY=TOKEN, NOTION_API_URL=notion_server.url)
    assert code == 0, err
    [db] = notion_server.databases
    assert f"NOTION_PERSONAS_DB_ID={db}" in out and "3 personas" in out
    code, out, err = await cli(tmp_path, "personas", "init-notion", "--parent", "https://www.notion.so/Nowhere-" + "c" * 32,
                               NOTION_API_KEY="secret_wrong_key_for_init", NOTION_API_URL=notion_server.url)
    assert code == 2 and "Notion refused NOTION_API_KEY" in err and "secret_wrong" not in err
    ds = notion_server.databases[db]["data_sources"][0]["id"]
    assert {plain_title(p) for p in notion_server.rows(ds)} == {"Cherry", "Sophia", "Karen"}

    env = dict(NOTION_API_KEY=TOKEN, NOTION_PERSONAS_DB_ID=db, NOTION_API_URL=notion_server.url)
    code, out, err = await cli(tmp_path, "personas", "sync", **env)
    assert code == 0, err
    assert {"+ cherry (new)", "+ sophia (new)", "+ karen (new)"} <= set(out.splitlines())

    page = next(p["id"] for p in notion_server.rows(ds) if plain_title(p) == "Karen")
    notion_server.edit_page(page, Role=text("Head of sales"), Humor=number(0.1))
    notion_server.add_page(ds, {"Name": title("Zed"), "Openness": number(3)})
    code, out, err = await cli(tmp_path, "personas", "sync", **env)
    assert code == 0, err
    assert out.splitlines() == ["~ karen: humor, role changed"]
    assert "skipped: Notion page 'Zed': traits.openness: 3" in err

    await notion_server.go_down()
    code, out, err = await cli(tmp_path, "personas", "sync", **env)
    assert code == 1 and "Notion cannot be reached" in out and "Traceback" not in err


def plain_title(page: dict) -> str:
    return "".join(seg["plain_text"] for seg in page["properties"]["Name"]["title"])


async def test_notion_client_retries_a_429_and_a_5xx_itself(notion_server):
    """The retries are notion-client's (configured in build_client), not a loop of ours."""
    db, ds, _ = seeded(notion_server)
    notion_server.rate_limit(times=1, retry_after=0)
    source = source_for(notion_server, db)
    try:
        assert len(await source.load()) == 3
        assert [r.status for r in notion_server.requests][:2] == [429, 200]
        assert notion_server.requests[0].path == notion_server.requests[1].path == f"/v1/databases/{db}"
        fresh = source_for(notion_server, db)
        notion_server.fail(times=1, status=503)
        assert len(await fresh.load()) == 3  # a read (GET) answered 503 is tried again
        await fresh.aclose()
    finally:
        await source.aclose()
