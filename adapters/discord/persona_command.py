"""`/persona` on Discord: a server admin changes the personas from chat (set, create, archive,
history), as Slack's `/persona` and the CLI do, through the same `PersonaAdmin` service.

Discord-native rather than one line of text: a command group whose subcommands take typed
options (`name:` with autocomplete from the live personas, `changes:`, `from:`), offered in servers
only, and, when no DISCORD_ADMIN_ROLES are configured, shown by default only to members with
*Manage Server* (who alone may use it then; a server admin can widen that in Server Settings →
Integrations). The rule itself is checked here on every use, the same as `/forget`'s.

An edit may be slow (a write to Notion), so the interaction is deferred (privately) before the
service runs, and the answer follows privately, split into several messages when it is longer
than one (a history can be), rendered for Discord and notifying nobody.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import discord
from discord import app_commands

from adapters.discord.callback import (
    DEFERRED_MESSAGE,
    EPHEMERAL,
    MESSAGE,
    message_data,
    respond,
)
from adapters.discord.render import MAX_CONTENT, pieces, plain, size
from engine.personas.admin import split_command
from engine.personas.edit import FIELDS, PersonaEditError

if TYPE_CHECKING:
    from adapters.discord.interactions import InteractionListeners

log = logging.getLogger(__name__)

#: Discord's own limits on what may be typed, so a slip is caught before it reaches us.
MAX_NAME = 100
MAX_CHANGES = 4000
Name = app_commands.Range[str, 1, MAX_NAME]
Changes = app_commands.Range[str, 1, MAX_CHANGES]

REFUSAL = (
    "Sorry, only admins can change the personas: members with the **Manage Server** permission or a "
    "role listed in DISCORD_ADMIN_ROLES. Ask one of them; `/personas` shows who is who."
)
IN_A_DM = "Personas are changed from a server: run `/persona` in a channel of a server where I am."
NOT_AVAILABLE = "Persona admin is not available in this bot."
FAILED = "Sorry, that did not work (details are in Orchestra's log); nothing was changed."
CHANGES_HELP = ("write each change as field=value, several in a row, e.g. `humor=0.3 role=Head of research` "
                "(fields: " + ", ".join(FIELDS) + "); nothing was changed")

_FENCE = "```"
_CODE_SPAN = re.compile(r"(`[^`\n]+`)")


class PersonaAdminPort(Protocol):
    """The persona admin service (`engine.personas.admin.PersonaAdmin`); a refusal is a
    `PersonaEditError` whose message is for the person."""

    async def set(self, name: str, assignments: Iterable[str], *, actor: str) -> str: ...

    async def create(self, name: str, assignments: Iterable[str] = (), *, actor: str,
                     template: str | None = None) -> str: ...

    async def archive(self, name: str, *, actor: str) -> str: ...

    async def history(self, name: str) -> str: ...


def assignments_of(changes: str | None) -> list[str]:
    """`humor=0.3 role=Head of research` -> ["humor=0.3", "role=Head of research"] (a value runs
    to the next `field=`, quotes taken off, as Slack's text). Words before the first `field=`
    are a slip (`humor 0.3`): `PersonaEditError` with how to write them."""
    words, assignments = split_command(changes or "")
    if words:
        raise PersonaEditError(f"changes: {' '.join(words)[:80]!r} is not a change: {CHANGES_HELP}")
    return assignments


def render_answer(text: str) -> list[str]:
    """The service's answer as Discord messages, each within 2,000 characters, nothing cut away.
    One line (a confirmation, a refusal): its `code` spans kept, markdown elsewhere escaped (a
    value like `*_*` shows as typed) and mentions defused. Several lines (a history): in code
    blocks, as Slack shows them, one per message, split at line breaks."""
    text = text.strip() or FAILED
    if "\n" not in text:
        shown = "".join(part if _CODE_SPAN.fullmatch(part) else discord.utils.escape_markdown(part)
                        for part in _CODE_SPAN.split(plain(text)))
        return pieces(shown, MAX_CONTENT)
    body = plain(text).replace(_FENCE, "`\u200b`\u200b`")  # a fence inside would end the block early
    room = MAX_CONTENT - size(f"{_FENCE}\n\n{_FENCE}")
    return [f"{_FENCE}\n{piece.strip(chr(10))}\n{_FENCE}" for piece in pieces(body, room)]


class PersonaCommand:
    """The `/persona` group for `InteractionListeners` (`install` registers it with the others):
    who may use it (`is_admin`), the names offered (`persona_choices`) and the service
    (`persona_admin`) are the listeners'."""

    def __init__(self, listeners: InteractionListeners):
        self.listeners = listeners

    async def answer(self, interaction: discord.Interaction, what: str,
                     call: Callable[[PersonaAdminPort, str], Awaitable[str]]) -> None:
        """Refuse at once (privately) who may not; otherwise defer, run `call(service, actor)`
        and send its answer privately, in as many messages as it takes."""
        listeners = self.listeners
        admin = listeners.persona_admin
        async with listeners.acking():
            refusal = (IN_A_DM if interaction.guild_id is None else REFUSAL if not listeners.is_admin(interaction)
                       else NOT_AVAILABLE if admin is None else None)
            if refusal is not None:
                await respond(interaction, MESSAGE, message_data(refusal))
                return
            await respond(interaction, DEFERRED_MESSAGE, {"flags": EPHEMERAL})
        assert admin is not None
        try:
            text = await call(admin, f"discord:{interaction.user.id}")
        except PersonaEditError as e:
            text = str(e)
        except Exception:  # the person gets a line, the log the details
            log.exception("Discord: /persona %s by %s failed", what, interaction.user.id)
            text = FAILED
        try:
            for part in render_answer(text):
                await interaction.followup.send(part, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as e:  # the change (if any) is made: only its answer is lost
            log.warning("Discord: /persona %s answer not sent (HTTP %s): %s", what, e.status, e.text)

    def group(self) -> app_commands.Group:
        """The command group as Discord shows it: every option described, names completed."""
        command = self
        listeners = self.listeners
        admins_only = None if listeners.admin_roles else discord.Permissions(manage_guild=True)
        group = app_commands.Group(name="persona", description="Change the personas (admins)",
                                   guild_only=True, default_permissions=admins_only)

        async def complete(interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
            return listeners.persona_choices(typed)

        @group.command(name="set", description="Change a persona's fields, e.g. humor=0.3 role=Head of research")
        @app_commands.describe(name="The persona to change",
                               changes="field=value, several in a row: humor=0.3 role=Head of research")
        @app_commands.autocomplete(name=complete)
        async def set_(interaction: discord.Interaction, name: Name, changes: Changes) -> None:
            await command.answer(interaction, "set", lambda admin, actor: admin.set(
                name, assignments_of(changes), actor=actor))

        @group.command(name="create", description="Add a persona, from a neutral template or a copy of another")
        @app_commands.describe(name="The new persona's name (one word, e.g. zoe)",
                               changes="Optional field=value changes: role=Analyst humor=0.6",
                               template="Optional: an existing persona to copy")
        @app_commands.rename(template="from")
        @app_commands.autocomplete(template=complete)
        async def create(interaction: discord.Interaction, name: Name, changes: Changes | None = None,
                         template: Name | None = None) -> None:
            await command.answer(interaction, "create", lambda admin, actor: admin.create(
                name, assignments_of(changes), actor=actor, template=template))

        @group.command(name="archive", description="Stop using a persona (her history is kept)")
        @app_commands.describe(name="The persona to archive")
        @app_commands.autocomplete(name=complete)
        async def archive(interaction: discord.Interaction, name: Name) -> None:
            await command.answer(interaction, "archive", lambda admin, actor: admin.archive(name, actor=actor))

        @group.command(name="history", description="Who changed a persona, what, and when")
        @app_commands.describe(name="The persona whose changes to show")
        @app_commands.autocomplete(name=complete)
        async def history(interaction: discord.Interaction, name: Name) -> None:
            await command.answer(interaction, "history", lambda admin, actor: admin.history(name))

        return group
