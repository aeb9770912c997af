"""`/persona` on Discord, as a server admin uses it: discord.py's real client against the local
Discord, the adapter built by `build_platforms` (so with the running bot's `PersonaAdmin`), the
personas in a real YAML file and the memory in a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio

from adapters.discord.app import DiscordAdapter
from bot.bootstrap import App, bootstrap
from bot.platforms import DiscordPlatform, build_platforms
from bot.settings import load_settings
from engine.personas import PersonaRegistry
from engine.providers import OfflineProvider
from tests.servers.discord_api import TOKEN, DiscordServer, connected
from tests.servers.discord_payloads import MANAGE_GUILD
from tests.settings_env import clean_settings_env  # noqa: F401 - autouse: no settings from this machine
from tests.test_discord import followups
from tests.test_persona_admin import defaults_copy

pytest_plugins = ["tests.servers.fixtures"]


@dataclass
class Bot:
    server: DiscordServer
    app: App
    adapter: DiscordAdapter
    path: Path | None  # the persona file (None: the shipped defaults)

    async def persona(self, subcommand: str, options: dict[str, Any], *, user: dict[str, Any] | None = None,
                      focused: str | None = None) -> dict[str, Any]:
        """`/persona SUBCOMMAND options...`, by carol (Manage Server) unless `user` says."""
        s = self.server
        payload = await s.slash_command("persona", options, subcommand=subcommand, user=user or s.carol,
                                        focused=focused)
        await s.wait_for(lambda: s.callbacks_for(payload))
        return payload

    async def answered(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """Every private message that answered `payload` (its follow-ups once they stop coming)."""
        s = self.server
        await s.wait_for(lambda: followups(s, payload))
        seen = -1
        while seen != len(followups(s, payload)):
            seen = len(followups(s, payload))
            await asyncio.sleep(0.1)
        return [f.json for f in followups(s, payload)]

    def registry(self) -> PersonaRegistry:
        assert self.path is not None
        return PersonaRegistry.from_yaml(self.path)


async def running_bot(server: DiscordServer, tmp_path: Path, *, defaults: bool = False,
                      **settings: Any) -> AsyncIterator[Bot]:
    path = None if defaults else defaults_copy(tmp_path)
    app = await bootstrap(load_settings(
        db=tmp_path / "memory.db", personas_file=path, discord_token=TOKEN, discord_api_url=server.url,
        discord_gateway_url=server.gateway_url, **settings), provider=OfflineProvider())
    try:
        [platform] = build_platforms(app, terminal=False)  # as `orchestra` wires it
        assert isinstance(platform, DiscordPlatform)
        adapter = platform.adapter
        await adapter.verify()
        async with connected(adapter.client, server, start=adapter.run):
            yield Bot(server, app, adapter, path)
            await adapter.listeners.idle()
    finally:
        await app.aclose()


@pytest_asyncio.fixture
async def bot(discord_server: DiscordServer, tmp_path) -> AsyncIterator[Bot]:
    async for b in running_bot(discord_server, tmp_path):
        yield b


def private(message: dict[str, Any]) -> bool:
    return bool(int(message.get("flags") or 0) & 64) and message["allowed_mentions"]["parse"] == []


async def test_the_synced_tree_has_persona_with_its_subcommands_and_described_options(bot: Bot) -> None:
    commands = {c["name"]: c for c in bot.server.commands[None]}
    assert {"investigate", "crew", "personas", "memory", "forget", "persona"} <= set(commands)
    persona = commands["persona"]
    assert persona["description"] and persona["dm_permission"] is False  # servers only, not DMs
    # no DISCORD_ADMIN_ROLES: shown by default only to members who may use it (Manage Server)
    assert int(persona["default_member_permissions"]) == MANAGE_GUILD
    subs = {o["name"]: o for o in persona["options"]}
    assert set(subs) == {"set", "create", "archive", "history"} and all(o["type"] == 1 for o in subs.values())
    options = {name: {o["name"]: o for o in sub["options"]} for name, sub in subs.items()}
    assert set(options["set"]) == {"name", "changes"} and set(options["create"]) == {"name", "changes", "from"}
    assert set(options["archive"]) == set(options["history"]) == {"name"}
    for sub in options.values():
        for option in sub.values():
            assert option["description"], option
    assert options["set"]["name"]["autocomplete"] and options["set"]["name"]["required"]
    assert options["set"]["changes"]["required"] and not options["create"]["changes"].get("required")
    assert options["create"]["from"]["autocomplete"] and not options["create"]["from"].get("required")
    assert options["archive"]["name"]["autocomplete"] and options["history"]["name"]["autocomplete"]
    assert not options["create"]["name"].get("autocomplete")  # a new name: nothing to offer


async def test_synced_to_the_guild_at_once_and_visible_to_members_when_admin_roles_are_set(discord_server, tmp_path) -> None:
    s = discord_server
    async for bot in running_bot(s, tmp_path, discord_admin_roles="moderators", discord_guild_ids=str(s.guild_id)):
        [persona] = [c for c in s.commands[s.guild_id] if c["name"] == "persona"]
        assert {o["name"] for o in persona["options"]} == {"set", "create", "archive", "history"}
        # a role may be an admin without Manage Server: Discord must show them the command
        assert persona.get("default_member_permissions") is None


async def test_an_admins_set_changes_the_file_and_the_running_bot_at_once(bot: Bot) -> None:
    s = bot.server
    done = await bot.persona("set", {"name": "sophia", "changes": "humor=0.3 role=Head of research"})
    assert s.callbacks_for(done)[0].type == 5 and s.callbacks_for(done)[0].data["flags"] & 64  # deferred, privately
    [answer] = await bot.answered(done)
    assert private(answer) and answer["content"].startswith("Updated Sophia: ")
    assert "humor 0.15 → 0.3" in answer["content"] and "→ 'Head of research'" in answer["content"]
    sophia = bot.registry()["sophia"]
    assert (sophia.humor, sophia.role) == (0.3, "Head of research")
    assert bot.app.engine.personas["sophia"].humor == 0.3  # in use at once, no reload

    shown = await s.slash_command("personas", {"name": "sophia"})
    await s.wait_for(lambda: s.callbacks_for(shown))
    assert "Head of research" in s.callbacks_for(shown)[0].data["content"]
    [change] = await bot.app.memory.persona_changes("sophia")
    assert change.actor == f"discord:{s.carol['id']}" and change.action == "update"


async def test_create_from_a_persona_then_archive_then_history(bot: Bot) -> None:
    made = await bot.persona("create", {"name": "zoe", "changes": "role=Analyst color=cyan", "from": "karen"})
    [answer] = await bot.answered(made)
    assert "Created Zoe (zoe) from a copy of karen" in answer["content"] and private(answer)
    zoe = bot.registry()["zoe"]
    assert zoe.role == "Analyst" and zoe.backstory == bot.registry()["karen"].backstory
    assert bot.app.engine.personas["zoe"].role == "Analyst"

    plain = await bot.persona("create", {"name": "max"})
    assert "Created Max (max) from the neutral template" in (await bot.answered(plain))[0]["content"]

    gone = await bot.persona("archive", {"name": "zoe"})
    assert "Archived Zoe (zoe)" in (await bot.answered(gone))[0]["content"]
    assert bot.registry().get("zoe") is None and bot.app.engine.personas.get("zoe") is None

    history = await bot.persona("history", {"name": "zoe"})
    [shown] = await bot.answered(history)
    text = shown["content"]
    assert text.startswith("```\nChanges to zoe (oldest first):") and text.endswith("\n```")
    assert f"create by discord:{bot.server.carol['id']}: from - → karen" in text
    assert f"archive by discord:{bot.server.carol['id']}" in text


async def test_a_member_who_is_no_admin_is_refused_and_nothing_is_written(bot: Bot) -> None:
    s = bot.server
    before = bot.path.read_bytes()
    assert not s.permissions_of(int(s.alice["id"])) & MANAGE_GUILD
    refused = await bot.persona("set", {"name": "sophia", "changes": "humor=0.9"}, user=s.alice)
    [callback] = s.callbacks_for(refused)
    assert callback.type == 4 and callback.data["flags"] & 64
    assert "only admins can change the personas" in callback.data["content"]
    assert "**Manage Server**" in callback.data["content"]
    await asyncio.sleep(0.2)
    assert not followups(s, refused) and bot.path.read_bytes() == before
    assert bot.app.engine.personas["sophia"].humor == 0.15
    assert await bot.app.memory.persona_changes("sophia") == []


async def test_a_configured_admin_role_may_change_a_persona(discord_server, tmp_path) -> None:
    s = discord_server
    role = s.add_role("Moderators")
    s.give_role(s.bob, role)
    assert not s.permissions_of(int(s.bob["id"])) & MANAGE_GUILD
    async for bot in running_bot(s, tmp_path, discord_admin_roles="moderators"):
        done = await bot.persona("set", {"name": "karen", "changes": "formality=0.2"}, user=s.bob)
        assert "Updated Karen: formality" in (await bot.answered(done))[0]["content"]
        assert bot.app.engine.personas["karen"].formality == 0.2


async def test_mistakes_get_the_friendly_answer_and_write_nothing(bot: Bot) -> None:
    before = bot.path.read_bytes()
    cases = [
        ("set", {"name": "sophia", "changes": "humor=1.5"}, "humor: '1.5' is out of range"),
        ("set", {"name": "sophia", "changes": "openness=0.2"}, "did you mean traits.openness?"),
        ("set", {"name": "sophia", "changes": "humor 0.3"}, "is not a change: write each change as field=value"),
        ("set", {"name": "nobody", "changes": "humor=0.2"}, "there is no persona called 'nobody' (known: cherry, sophia, karen)"),
        ("create", {"name": "karen"}, "there is already a persona called karen"),
        ("create", {"name": "zed", "from": "nobody"}, "--from nobody: no such persona"),
        ("archive", {"name": "sophia"}, "ORCHESTRA\\_RESEARCHER=sophia"),  # markdown escaped: shown as written
    ]
    for subcommand, options, words in cases:
        payload = await bot.persona(subcommand, options)
        [answer] = await bot.answered(payload)
        assert words in answer["content"] and private(answer), (subcommand, options, answer["content"])
        assert "Error" not in answer["content"] and "Traceback" not in answer["content"]
    assert bot.path.read_bytes() == before
    assert await bot.app.memory.persona_changes("sophia") == []


async def test_with_the_shipped_defaults_the_answer_says_how_to_get_an_editable_file(discord_server, tmp_path) -> None:
    async for bot in running_bot(discord_server, tmp_path, defaults=True):
        payload = await bot.persona("set", {"name": "sophia", "changes": "humor=0.3"})
        [answer] = await bot.answered(payload)
        assert answer["content"].startswith("the personas in use are the shipped defaults, which are read-only")
        assert "`orchestra personas init personas.yaml`" in answer["content"]  # a code span, kept as one
        assert "ORCHESTRA\\_PERSONAS=personas.yaml" in answer["content"]
        assert bot.app.engine.personas["sophia"].humor == 0.15


class BrokenAdmin:
    """The persona admin service when something unexpected breaks inside it."""

    async def set(self, name: str, assignments: Any, *, actor: str) -> str:
        raise RuntimeError("could not reach db.internal:5432 with password hunter2")


async def test_an_unexpected_failure_is_a_friendly_line_and_the_details_go_to_the_log(bot: Bot, caplog) -> None:
    bot.adapter.listeners.persona_admin = BrokenAdmin()
    payload = await bot.persona("set", {"name": "sophia", "changes": "humor=0.3"})
    [answer] = await bot.answered(payload)
    text = answer["content"]
    assert text == "Sorry, that did not work (details are in Orchestra's log); nothing was changed." and private(answer)
    assert "db.internal" in caplog.text and "/persona set" in caplog.text


async def test_a_long_history_is_split_into_messages_none_over_2000_and_pings_nobody(bot: Bot) -> None:
    for i in range(40):
        await bot.app.memory.record_persona_change(
            "sophia", source="yaml:x", actor="discord:@everyone", action="update",
            changes={"backstory": [f"old story {i} " + "x" * 50, f"<@{bot.server.alice['id']}> new story {i} " + "y" * 50]})
    payload = await bot.persona("history", {"name": "sophia"})
    parts = await bot.answered(payload)
    assert len(parts) >= 2
    for part in parts:
        assert len(part["content"]) <= 2000 and private(part)
        assert part["content"].startswith("```\n") and part["content"].endswith("\n```")
    lines = [line for p in parts for line in p["content"].split("\n")[1:-1]]
    assert lines[0] == "Changes to sophia (oldest first):" and len(lines) == 41  # every change, none cut
    everything = "".join(p["content"] for p in parts)
    assert "@everyone" not in everything and f"<@{bot.server.alice['id']}>" not in everything  # shown, not pinging


async def test_a_card_made_long_by_an_edit_is_shown_whole_by_personas_in_several_messages(bot: Bot) -> None:
    """A persona edited with a long role and backstory: `/personas NAME` shows all of it, in
    private messages of at most 2,000 characters (it was cut at 4,096 in one embed)."""
    s = bot.server
    role = " ".join(f"role{i}" for i in range(150))
    backstory = " ".join(f"story{i}" for i in range(400))
    done = await bot.persona("set", {"name": "sophia", "changes": f"role={role} backstory={backstory}"})
    assert (await bot.answered(done))[0]["content"].startswith("Updated Sophia")
    card = bot.app.engine.persona_card("sophia")
    assert card is not None and len(card) > 4096

    shown = await s.slash_command("personas", {"name": "sophia"})
    await s.wait_for(lambda: s.callbacks_for(shown))
    first = s.callbacks_for(shown)[0].data
    rest = await bot.answered(shown)
    parts = [first, *rest]
    assert len(parts) >= 3 and all(private(p) and len(p["content"]) <= 2000 for p in parts)
    assert "".join(p["content"] for p in parts) == card  # nothing cut, nothing added


async def test_autocomplete_offers_the_live_persona_names(bot: Bot) -> None:
    s = bot.server
    typed = await bot.persona("set", {"name": "ka", "changes": ""}, focused="name")
    [callback] = s.callbacks_for(typed)
    assert callback.type == 8 and [c["value"] for c in callback.data["choices"]] == ["karen"]

    made = await bot.persona("create", {"name": "zoe"})
    await bot.answered(made)
    typed = await bot.persona("create", {"name": "new", "from": "z"}, focused="from")
    assert [c["value"] for c in s.callbacks_for(typed)[0].data["choices"]] == ["zoe"]
    everyone = await bot.persona("history", {"name": ""}, focused="name")
    assert [c["value"] for c in s.callbacks_for(everyone)[0].data["choices"]] == ["cherry", "sophia", "karen", "zoe"]
