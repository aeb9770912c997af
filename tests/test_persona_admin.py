"""Persona admin (create / set / archive / history / import) as admins use it: the service against a
real YAML file (its comments kept) and the local Notion, the running engine seeing a change at
once, the CLI and the terminal as real processes, and Slack's /persona through the local Slack."""

from __future__ import annotations

import asyncio
import getpass
import shutil
from importlib import resources
from pathlib import Path

import pytest

from adapters.notion.properties import database_schema
from bot.bootstrap import bootstrap
from bot.platforms import build_platforms
from bot.settings import load_settings
from engine.memory.open import open_memory
from engine.personas import PersonaRegistry
from engine.personas.admin import PersonaAdmin, split_command
from engine.personas.edit import PersonaEditError
from engine.personas.source import DefaultPersonas, YamlPersonaSource
from engine.providers import OfflineProvider
from tests.servers.notion_api import NotionServer
from tests.test_cli import clean_env, orchestra
from tests.test_notion_personas import full_page, notion_settings, wait_until
from tests.test_slack import ADMIN, build_rig, slack_api  # noqa: F401 - fixture
from tests.memory_backends import memory_db, pg_server  # noqa: F401 - fixtures
from tests.test_terminal import chat

pytest_plugins = ["tests.servers.fixtures"]

from tests.settings_env import clean_settings_env  # noqa: F401 - autouse: no settings from this machine
CAST = {"ORCHESTRA_RESEARCHER": "sophia", "ORCHESTRA_CRITIC": "karen", "ORCHESTRA_PLANNER": "cherry"}




def defaults_copy(tmp_path: Path) -> Path:
    path = tmp_path / "personas.yaml"
    shutil.copy(resources.files("engine.personas").joinpath("defaults.yaml"), path)
    return path


def comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("#") or "  # " in line]


# --- the service --------------------------------------------------------------------------------------


async def test_set_create_archive_and_history_on_a_yaml_file_keep_its_comments(tmp_path, memory_db):
    path = defaults_copy(tmp_path)
    kept = comments(path.read_text(encoding="utf-8"))
    memory = await open_memory(memory_db)
    try:
        admin = PersonaAdmin(YamlPersonaSource(path), memory, cast=CAST)

        said = await admin.run("set sophia humor=0.3 role=Head of research traits.openness=0.95", actor="slack:U1")
        assert said.startswith("Updated Sophia:") and "humor 0.5" not in said and "'Head of research'" in said
        sophia = PersonaRegistry.from_yaml(path)["sophia"]
        assert (sophia.humor, sophia.role, sophia.traits.openness) == (0.3, "Head of research", 0.95)

        said = await admin.create("zoe", ["role=Analyst", "color=cyan"], actor="ada", template="sophia")
        assert "Created Zoe (zoe) from a copy of sophia" in said
        zoe = PersonaRegistry.from_yaml(path)["zoe"]
        assert zoe.role == "Analyst" and zoe.backstory == sophia.backstory and zoe.display_name == "Zoe"
        await admin.create("max", [], actor="ada")
        assert PersonaRegistry.from_yaml(path)["max"].role == "Assistant"

        text = path.read_text(encoding="utf-8")
        for line in kept:
            assert line in text, line
        assert text.index("cherry:") < text.index("sophia:") < text.index("karen:") < text.index("zoe:")

        assert "Archived Zoe" in await admin.run("archive zoe", actor="slack:U1")
        assert PersonaRegistry.from_yaml(path).names == ["cherry", "sophia", "karen", "max"]

        history = await admin.run("history sophia", actor="slack:U1")
        assert "update by slack:U1" in history and "humor 0.15 → 0.3" in history and "UTC" in history
        zoe_history = await admin.history("zoe")
        assert "create by ada: from - → sophia" in zoe_history and "archive by slack:U1" in zoe_history
        [change] = await memory.persona_changes("sophia")
        assert change.source == f"yaml:{path}" and change.changes["humor"] == [0.15, 0.3]
    finally:
        await memory.close()


async def test_every_refusal_says_what_to_do_and_writes_nothing(tmp_path, memory_db):
    path = defaults_copy(tmp_path)
    before = path.read_bytes()
    memory = await open_memory(memory_db)
    try:
        admin = PersonaAdmin(YamlPersonaSource(path), memory, cast=CAST)
        cases = {
            "set sophia humor=1.5": "humor: '1.5' is out of range",
            "set sophia openness=0.2": "did you mean traits.openness?",
            "set sophia template=Hi [nmae]": "unknown placeholder [nmae]",
            "set sophia display_name=Karen": "already used",
            "set nobody humor=0.2": "no persona called 'nobody' (known: cherry, sophia, karen)",
            "set sophia": "say what to change",
            "create karen": "already a persona called karen",
            "create zed --from nobody": "--from nobody: no such persona",
            "archive sophia": "ORCHESTRA_RESEARCHER=sophia",
            "frobnicate sophia": "Usage",
        }
        for command, words in cases.items():
            with pytest.raises(PersonaEditError, match=None) as e:
                await admin.run(command, actor="ada")
            assert words in str(e.value), (command, str(e.value))
            assert "Error" not in str(e.value) and "Traceback" not in str(e.value)
        assert path.read_bytes() == before
        assert await memory.persona_changes("sophia") == []

        lone = tmp_path / "one.yaml"
        lone.write_text("# ours\nsolo:\n  display_name: Solo\n  role: r\n  backstory: b\n  traits: {openness: 0.5, "
                        "conscientiousness: 0.5, extraversion: 0.5, agreeableness: 0.5, neuroticism: 0.5}\n"
                        "  humor: 0.5\n  formality: 0.5\n  template: '[task]'\n", encoding="utf-8")
        with pytest.raises(PersonaEditError, match="the last persona"):
            await PersonaAdmin(YamlPersonaSource(lone), memory).archive("solo", actor="ada")

        with pytest.raises(PersonaEditError, match="personas init personas.yaml.*ORCHESTRA_PERSONAS"):
            await PersonaAdmin(DefaultPersonas(), memory).run("set sophia humor=0.3", actor="ada")
    finally:
        await memory.close()


def test_a_chat_command_needs_no_quotes_and_takes_them_off():
    assert split_command("set sophia role=Head of research humor=0.3") == (
        ["set", "sophia"], ["role=Head of research", "humor=0.3"])
    assert split_command("set karen backstory=“She's blunt.” color=red") == (
        ["set", "karen"], ["backstory=She's blunt.", "color=red"])
    assert split_command("create zoe") == (["create", "zoe"], [])


# --- the running bot ----------------------------------------------------------------------------------


async def test_a_set_in_chat_reaches_the_running_engine_at_once_with_notion(tmp_path, notion_server: NotionServer):
    db, ds = notion_server.add_database(database_schema())  # every property, as init-notion makes it
    pages = {p.name: notion_server.add_page(ds, full_page(p)) for p in PersonaRegistry.defaults()}
    settings = notion_settings(tmp_path, notion_server, db, personas_ttl=3600)  # no refresh in this test
    app = await bootstrap(settings, provider=OfflineProvider())
    try:
        admin = app.persona_admin
        said = await admin.run("set sophia humor=0.3 role=Chief data scientist", actor="slack:U0ADMIN")
        assert said.startswith("Updated Sophia")
        assert app.engine.personas["sophia"].role == "Chief data scientist"  # no reload, no restart
        [patch] = [r for r in notion_server.of("PATCH", "/v1/pages/") if r.path.endswith(pages["sophia"])]
        assert patch.body["properties"]["Humor"] == {"number": 0.3}

        await admin.run("create zoe role=Analyst --from karen", actor="slack:U0ADMIN")
        assert app.engine.personas["zoe"].role == "Analyst" and len(notion_server.of("POST", "/v1/pages")) == 1
        await admin.run("archive zoe", actor="slack:U0ADMIN")
        assert app.engine.personas.get("zoe") is None
        assert notion_server.of("PATCH", "/v1/pages/")[-1].body == {"in_trash": True}

        history = await admin.history("sophia")
        assert "update by slack:U0ADMIN" in history and "→ 'Chief data scientist'" in history
        assert "humor 0.15 → 0.3" in history
        [change] = await app.memory.persona_changes("sophia")
        assert change.source == f"notion:{db}"
        assert [c.action for c in await app.memory.persona_changes("zoe")] == ["create", "archive"]
        kept = await app.memory.last_persona_set(f"notion:{db}")
        assert next(p for p in kept.personas if p["name"] == "sophia")["humor"] == 0.3  # the last good set too
    finally:
        await app.aclose()


async def test_import_writes_into_notion_when_notion_is_the_source(tmp_path, notion_server: NotionServer):
    db, ds = notion_server.add_database(database_schema())
    defaults = list(PersonaRegistry.defaults())
    pages = {p.name: notion_server.add_page(ds, full_page(p)) for p in defaults}
    app = await bootstrap(notion_settings(tmp_path, notion_server, db, personas_ttl=3600), provider=OfflineProvider())
    try:
        incoming = [defaults[1].model_copy(update={"role": "Head of research"}),
                    defaults[2].model_copy(update={"name": "dora", "display_name": "Dora"})]
        said = await app.persona_admin.import_personas(incoming, actor="ada")
        assert "into the Notion database" in said and "new: dora" in said and "updated: sophia (role)" in said
        assert app.engine.personas["sophia"].role == "Head of research" and app.engine.personas["dora"]
        assert [r.path for r in notion_server.of("PATCH", "/v1/pages/")] == [f"/v1/pages/{pages['sophia']}"]
        assert len(notion_server.of("POST", "/v1/pages")) == 1
        assert [c.action for c in await app.memory.persona_changes("dora")] == ["import"]
        assert (await app.memory.persona_changes("sophia"))[0].changes == {"role": ["Research and data lead", "Head of research"]}
    finally:
        await app.aclose()


async def test_a_cli_edit_reaches_a_running_bot_through_the_file(tmp_path):
    path = defaults_copy(tmp_path)
    app = await bootstrap(load_settings(db=tmp_path / "memory.db", personas_file=path), provider=OfflineProvider())
    try:
        assert app.live_personas is not None and app.engine.personas["karen"].humor != 0.9
        result = orchestra(tmp_path, "personas", "set", "karen", "humor=0.9",
                           env=clean_env(tmp_path, ORCHESTRA_PERSONAS=str(path)))
        assert result.returncode == 0, result.stderr
        await wait_until(lambda: app.engine.personas["karen"].humor == 0.9)  # the file's mtime: about a second
        [change] = await app.memory.persona_changes("karen")
        assert change.actor == getpass.getuser() and change.action == "update"
    finally:
        await app.aclose()


async def test_a_hand_edit_that_drops_a_cast_persona_is_not_taken(tmp_path, caplog):
    path = defaults_copy(tmp_path)
    app = await bootstrap(load_settings(db=tmp_path / "memory.db", personas_file=path), provider=OfflineProvider())
    try:
        text = path.read_text(encoding="utf-8")
        path.write_text(text[:text.index("sophia:")] + text[text.index("karen:"):], encoding="utf-8")
        await wait_until(lambda: app.live_personas.outage is not None)
        assert app.engine.personas["sophia"].role == "Research and data lead"
        assert "no longer has sophia, whom the cast needs" in caplog.text
        path.write_text(text.replace("humor: 0.15", "humor: 0.25", 1), encoding="utf-8")  # fixed: taken again
        await wait_until(lambda: app.engine.personas["sophia"].humor == 0.25)
    finally:
        await app.aclose()


# --- the CLI, the terminal and Slack --------------------------------------------------------------------


def test_the_cli_commands_as_people_run_them(tmp_path):
    env = clean_env(tmp_path)
    refused = orchestra(tmp_path, "personas", "set", "sophia", "humor=0.3", env=env)
    assert refused.returncode == 2 and "read-only" in refused.stderr and "personas init" in refused.stderr

    made = orchestra(tmp_path, "personas", "init", "team.yaml", env=env)
    assert made.returncode == 0 and "ORCHESTRA_PERSONAS=" in made.stdout
    assert (tmp_path / "team.yaml").read_text(encoding="utf-8") == \
        resources.files("engine.personas").joinpath("defaults.yaml").read_text("utf-8")
    assert orchestra(tmp_path, "personas", "init", "team.yaml", env=env).returncode == 2  # never overwritten

    env = clean_env(tmp_path, ORCHESTRA_PERSONAS=str(tmp_path / "team.yaml"))
    ok = orchestra(tmp_path, "personas", "set", "sophia", "humor=0.3", "role=Head of research", env=env)
    assert ok.returncode == 0 and "Updated Sophia" in ok.stdout, ok.stderr
    bad = orchestra(tmp_path, "personas", "set", "sophia", "humor=high", env=env)
    assert bad.returncode == 2 and "humor: 'high' is not a number from 0 to 1" in bad.stderr and bad.stdout == ""
    assert "Traceback" not in bad.stderr
    created = orchestra(tmp_path, "personas", "create", "zoe", "role=Analyst", "--from", "sophia", env=env)
    assert created.returncode == 0, created.stderr
    cast = orchestra(tmp_path, "personas", "archive", "karen", env=env)
    assert cast.returncode == 2 and "ORCHESTRA_CRITIC=karen" in cast.stderr
    assert orchestra(tmp_path, "personas", "archive", "zoe", env=env).returncode == 0
    shown = orchestra(tmp_path, "personas", "show", "sophia", env=env)
    assert "Head of research" in shown.stdout

    history = orchestra(tmp_path, "personas", "history", "sophia", env=env)
    assert history.returncode == 0 and f"update by {getpass.getuser()}" in history.stdout
    assert "humor 0.15 → 0.3" in history.stdout

    exported = orchestra(tmp_path, "personas", "export", "out.json", env=env)
    assert exported.returncode == 0 and "cherry, sophia, karen" in exported.stdout
    other = clean_env(tmp_path, ORCHESTRA_PERSONAS=str(tmp_path / "copy.yaml"))
    imported = orchestra(tmp_path, "personas", "import", "out.json", env=other)
    assert imported.returncode == 0 and "new: cherry, sophia, karen" in imported.stdout
    assert PersonaRegistry.from_yaml(tmp_path / "copy.yaml")["sophia"].role == "Head of research"
    again = orchestra(tmp_path, "personas", "history", "cherry", env=other)
    assert "import by" in again.stdout


def test_the_terminal_operator_may_change_a_persona(tmp_path):
    path = defaults_copy(tmp_path)
    env = clean_env(tmp_path, ORCHESTRA_PERSONAS=str(path))
    result = chat(tmp_path, "/persona set cherry humor=0.1", "/personas cherry", "/persona set cherry humor=2",
                  "/persona history cherry", "/persona", env=env)
    assert result.returncode == 0
    out = result.stdout
    assert "Updated Cherry: humor 0.4 → 0.1" in out
    assert "humor: '2' is out of range" in out
    assert f"update by local:{getpass.getuser()}" in out or "update by local:" in out
    assert "persona create NAME" in out  # bare /persona: the usage
    assert PersonaRegistry.from_yaml(path)["cherry"].humor == 0.1


async def test_slack_persona_is_for_admins_and_changes_the_running_bot(slack_api, tmp_path):  # noqa: F811
    path = defaults_copy(tmp_path)
    settings = load_settings(db=tmp_path / "memory.db", personas_file=path)
    app = await bootstrap(settings, provider=OfflineProvider())
    rig = await build_rig(slack_api, tmp_path, engine=app.engine)
    rig.adapter.listeners.persona_admin = app.persona_admin  # as build_platforms wires it
    try:
        _, refused = await rig.command("/persona", "set sophia humor=0.3", user="U0ALICE")
        await rig.settle()
        [answer] = rig.responses(refused)
        assert "only Orchestra's admins" in answer["text"] and answer["response_type"] == "ephemeral"
        assert app.engine.personas["sophia"].humor == 0.15

        _, done = await rig.command("/persona", "set sophia humor=0.3 role=Head of research", user=ADMIN)
        await rig.settle()
        assert "Updated Sophia" in rig.responses(done)[0]["text"]
        assert app.engine.personas["sophia"].humor == 0.3 and app.engine.persona_card("sophia").count("Head of research")

        _, wrong = await rig.command("/persona", "archive sophia", user=ADMIN)
        _, history = await rig.command("/persona", "history sophia", user=ADMIN)
        await rig.settle()
        assert "ORCHESTRA_RESEARCHER" in rig.responses(wrong)[0]["text"]
        assert f"update by slack:{ADMIN}" in rig.responses(history)[0]["text"]
    finally:
        await rig.settle()
        await rig.adapter.stop()
        await app.aclose()


async def test_build_platforms_gives_the_terminal_and_slack_the_admin_service(tmp_path):
    path = defaults_copy(tmp_path)
    app = await bootstrap(load_settings(db=tmp_path / "memory.db", personas_file=path), provider=OfflineProvider())
    try:
        [shell] = build_platforms(app)
        assert shell.persona_admin is not None and shell.persona_admin.live is app.live_personas
        assert "Updated Karen" in await shell.persona_admin.run("set karen formality=0.2", actor="local:ada")
        assert app.engine.personas["karen"].formality == 0.2
    finally:
        await app.aclose()


def test_default_personas_are_left_alone_when_none_is_configured(tmp_path):
    """No ORCHESTRA_PERSONAS: nothing is watched; the admin answers with how to get a file."""

    async def go():
        app = await bootstrap(load_settings(db=tmp_path / "memory.db"), provider=OfflineProvider())
        try:
            assert app.live_personas is None
            with pytest.raises(PersonaEditError, match="read-only"):
                await app.persona_admin.run("create zoe", actor="local:ada")
        finally:
            await app.aclose()

    asyncio.run(go())
