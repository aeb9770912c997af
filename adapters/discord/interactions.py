"""Discord interactions: the slash commands (/investigate, /crew, /personas, /memory, /forget;
/persona is registered here from its own module, `persona_command.py`) and the buttons under a
persona's findings, with the code that registers them.

An interaction must be answered within 3 seconds, and Discord does not send an answered
interaction again: the task is in SQLite (`engine.submit`, a few milliseconds) before the answer
goes out (one POST, `callback.py`). Anything slower (removing clicked buttons, refusals) runs
afterwards, in the background (`later`).

A mixin of `DiscordListeners` (`listeners.py`), which holds what messages and interactions share:
the engine, the outbox, who is allowed, storing a task and running work after the acknowledgements.
Kept apart because a message and an interaction are answered so differently (a reply in the
channel when it suits, against a private answer owed within 3 seconds).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from adapters.discord import translate as tr
from adapters.discord.callback import DEFERRED_MESSAGE, DEFERRED_UPDATE, EPHEMERAL, MESSAGE, message_data, respond
from adapters.discord.persona_command import PersonaAdminPort, PersonaCommand
from adapters.discord.render import ACTION_CUSTOM_ID_RE, action_custom_id, pieces, taken_line
from adapters.listening import EnginePort, knows_persona
from engine.crews.request import COMPLEXITIES, DOMAINS, CrewRequest, CrewRequestError, crew_request, parse_crew_text
from engine.memory.errors import is_transient
from engine.models import Accepted, Task, TaskKind, TaskRefused

if TYPE_CHECKING:
    from adapters.discord.listeners import _Recent
    from adapters.discord.outbox import DiscordOutbox

log = logging.getLogger(__name__)

ACTION_WORDS = {"challenge": "Challenge", "plan": "Move to planning", "close": "Close", "crew": "Hand to a crew"}
#: A message's buttons count as used for this long after a click (until the edit removes them).
CLICK_WINDOW = 60.0


def _opens_where(interaction: discord.Interaction, parent: int | None) -> str:
    """Where a new investigation or crew opens its thread, as the acknowledgement says it."""
    if interaction.guild_id is None:
        return "here"
    if parent is not None:
        return f"in its own thread in <#{parent}>"
    return "in its own thread in this channel"


def _parent_id(channel: Any) -> int | None:
    return getattr(channel, "parent_id", None) if isinstance(channel, discord.Thread) else None


class InteractionListeners:
    """Slash commands and buttons, for `DiscordListeners`; what they use from it is named here."""

    engine: EnginePort
    outbox: DiscordOutbox
    client: discord.Client | None
    admin_roles: set[str]
    persona_admin: PersonaAdminPort | None
    clicks: _Recent
    allowed: Callable[..., bool]
    later: Callable[[Awaitable[Any], str], None]
    _submit: Callable[[Task], Awaitable[Accepted]]

    # --- policy -------------------------------------------------------------------------------

    def is_admin(self, interaction: discord.Interaction) -> bool:
        perms = getattr(interaction, "permissions", None)
        if perms is not None and (perms.manage_guild or perms.administrator):
            return True
        roles = getattr(interaction.user, "roles", None) or []
        return any(str(r.id) in self.admin_roles or r.name.lower() in self.admin_roles for r in roles)

    # --- slash commands -----------------------------------------------------------------------

    def persona_choices(self, typed: str = "") -> list[app_commands.Choice[str]]:
        """The personas matching what was typed so far, read at each keystroke: personas edited in
        Notion or from chat appear without a restart (fixed choices would be frozen at sync)."""
        typed = typed.strip().lstrip("@").lower()
        people = [p for p in list(getattr(self.engine, "personas", None) or [])
                  if not typed or typed in p.name.lower() or typed in p.display_name.lower()]
        return [app_commands.Choice(name=f"{p.display_name} ({p.role})"[:100], value=p.name) for p in people][:25]

    async def on_investigate(self, interaction: discord.Interaction, problem: str, persona: str | None) -> None:
        text = (problem or "").strip()
        if not text:
            await interaction.response.send_message(tr.usage_text(), ephemeral=True)
            return
        if persona and not knows_persona(self.engine, persona.strip().lstrip("@")):
            await interaction.response.send_message(
                f"I don't know a persona called **{discord.utils.escape_markdown(persona[:80])}**. "
                f"Pick one from the list, or leave it empty and the topic decides.\n\n{self.engine.personas_overview()}"[:2000],
                ephemeral=True, allowed_mentions=discord.AllowedMentions.none(),
            )
            return
        parent = _parent_id(interaction.channel)
        task = tr.command_task(
            TaskKind.INVESTIGATE, interaction_id=interaction.id, guild_id=interaction.guild_id,
            channel_id=interaction.channel_id or 0, parent_id=parent, user_id=interaction.user.id, text=text, persona=persona,
        )
        if not self.allowed(task.channel, task.user, task.thread):
            await interaction.response.send_message(tr.REFUSAL, ephemeral=True)
            return
        # the engine posts the root in the channel and opens its own thread there
        task = task.model_copy(update={"thread": None})
        if await self._store_command(interaction, task, "/investigate", interaction.response.send_message) is None:
            return
        where = _opens_where(interaction, parent)
        title = discord.utils.escape_markdown(" ".join(text.split())[:200])
        # the acknowledgement, in one plain POST (callback.py: half of what discord.py's call costs)
        await respond(interaction, MESSAGE, message_data(f"🔎 Starting an investigation {where}: *{title}*"))

    async def on_crew(self, interaction: discord.Interaction, text: str | None, domain: str | None,
                      complexity: str | None, persona: str | None) -> None:
        """`/crew`: a new crew at the channel's top level (its root post opens its thread, as for
        /investigate); without text, in an investigation's thread, that investigation's plan is
        handed to a crew. What the person must fix is answered at once, privately; the rest is
        deferred, stored, then confirmed privately (a slow disk never misses the 3 s window)."""
        quiet = discord.AllowedMentions.none()
        try:  # options typed in the text ("sales high: …") count when none was picked
            request = (parse_crew_text(text or "") if domain is None and complexity is None
                       else crew_request(text or "", domain, complexity))
        except CrewRequestError as e:
            await interaction.response.send_message(tr.crew_error_text(str(e))[:2000], ephemeral=True, allowed_mentions=quiet)
            return
        if persona and not knows_persona(self.engine, persona.strip().lstrip("@")):
            await interaction.response.send_message(
                f"I don't know a persona called **{discord.utils.escape_markdown(persona[:80])}**. Pick one from the "
                f"list, or leave it empty and the topic decides. Nothing was started.\n\n{self.engine.personas_overview()}"[:2000],
                ephemeral=True, allowed_mentions=quiet)
            return
        parent = _parent_id(interaction.channel)
        task = tr.command_task(
            TaskKind.CREW, interaction_id=interaction.id, guild_id=interaction.guild_id,
            channel_id=interaction.channel_id or 0, parent_id=parent, user_id=interaction.user.id, text=request.text,
            persona=persona,
        )
        if not self.allowed(task.channel, task.user, task.thread):
            await interaction.response.send_message(tr.REFUSAL, ephemeral=True)
            return
        handing = not request.text
        if handing and task.thread is None:
            await interaction.response.send_message(tr.crew_usage_text(), ephemeral=True)
            return
        # a hand-off stays in its thread; a new crew opens its own, as /investigate does
        task = task.model_copy(update={"thread": task.thread if handing else None,
                                       "options": {} if handing else request.options()})
        await respond(interaction, DEFERRED_MESSAGE, {"flags": EPHEMERAL})
        if await self._store_command(interaction, task, "/crew", interaction.followup.send) is None:
            return
        await interaction.followup.send(self._crew_started(interaction, request, parent, handing), ephemeral=True,
                                        allowed_mentions=quiet)

    @staticmethod
    def _crew_started(interaction: discord.Interaction, request: CrewRequest, parent: int | None, handing: bool) -> str:
        if handing:
            return "👥 Handing this thread's plan to a crew: the posts follow here."
        where = _opens_where(interaction, parent)
        what = ", ".join(v for v in (request.domain, f"{request.complexity} complexity") if v)
        title = discord.utils.escape_markdown(" ".join(request.text.split())[:200])
        return f"👥 Assembling a crew ({what}) {where}: *{title}*"

    async def on_personas(self, interaction: discord.Interaction, name: str | None) -> None:
        name = (name or "").strip().lstrip("@")
        if name:
            card = self.engine.persona_card(name)
            text = card or f"I don't know a persona called **{discord.utils.escape_markdown(name[:80])}**.\n\n{self.engine.personas_overview()}"
        else:
            text = self.engine.personas_overview() + "\n\n`/personas name:` shows one of them in full."
        await self._ephemeral(interaction, text)

    async def on_memory(self, interaction: discord.Interaction) -> None:
        channel, thread = tr._where(interaction.guild_id, interaction.channel_id or 0, _parent_id(interaction.channel))
        if not self.allowed(channel, str(interaction.user.id), thread):
            await interaction.response.send_message(tr.REFUSAL, ephemeral=True)
            return
        await respond(interaction, DEFERRED_MESSAGE, {"flags": EPHEMERAL})
        summaries = await self.engine.memory_list(tr.PLATFORM, tr.workspace_of(interaction.guild_id), channel)
        await interaction.followup.send(tr.memory_text(summaries), ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    async def on_forget(self, interaction: discord.Interaction) -> None:
        if interaction.guild_id is None:
            await interaction.response.send_message(tr.FORGET_DM, ephemeral=True)
            return
        if not self.is_admin(interaction):
            await interaction.response.send_message(tr.FORGET_REFUSAL, ephemeral=True)
            return
        channel, _ = tr._where(interaction.guild_id, interaction.channel_id or 0, _parent_id(interaction.channel))
        await respond(interaction, DEFERRED_MESSAGE, {"flags": EPHEMERAL})
        result = await self.engine.memory_forget(tr.PLATFORM, tr.workspace_of(interaction.guild_id), channel)
        await interaction.followup.send(tr.forget_text(result), ephemeral=True)

    async def _ephemeral(self, interaction: discord.Interaction, text: str) -> None:
        """A private answer, never cut: a card longer than one message (a persona edited with
        `/persona` can have a long role) follows in as many messages as it takes."""
        quiet = discord.AllowedMentions.none()
        first, *rest = pieces(text, tr.MAX_CONTENT) or [text]
        await interaction.response.send_message(first, ephemeral=True, allowed_mentions=quiet)
        for part in rest:
            await interaction.followup.send(part, ephemeral=True, allowed_mentions=quiet)

    # --- buttons ------------------------------------------------------------------------------

    async def on_click(self, interaction: discord.Interaction, kind: str, investigation: str, label: str | None) -> None:
        message = interaction.message
        if message is None:
            await respond(interaction, DEFERRED_UPDATE)
            return
        parent = _parent_id(interaction.channel)
        task = tr.click_task(
            TaskKind(kind), message_id=message.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id or 0,
            parent_id=parent, user_id=interaction.user.id, investigation_id=investigation,
        )
        if not self.allowed(task.channel, task.user, task.thread):
            await interaction.response.send_message(tr.REFUSAL, ephemeral=True)
            return
        claim = (message.id,)
        if not self.clicks.first_time(claim):
            log.info("Discord: %s click on %s ignored: its buttons were just used", kind, message.id)
            await respond(interaction, DEFERRED_UPDATE)
            return
        accepted = await self._store_command(interaction, task, f"{kind} click", interaction.response.send_message)
        if accepted is None:
            self.clicks.forget(claim)
            return
        await respond(interaction, DEFERRED_UPDATE)
        if not accepted.duplicate:
            thread = str(interaction.channel_id) if parent is not None else None
            channel = str(parent) if parent is not None else str(interaction.channel_id)
            line = taken_line(label or ACTION_WORDS.get(kind, kind), task.user)
            self.later(self.outbox.show_taken(channel, thread, str(message.id), line), "remove the clicked buttons")

    def button_class(self) -> type:
        """The persistent button: any message's `orchestra:<kind>:<investigation>` button, also
        one posted before a restart, comes here."""
        listeners = self

        class ActionButton(discord.ui.DynamicItem[discord.ui.Button], template=ACTION_CUSTOM_ID_RE):
            def __init__(self, kind: str, investigation: str, label: str | None = None) -> None:
                super().__init__(discord.ui.Button(custom_id=action_custom_id(TaskKind(kind), investigation), label=label))
                self.kind, self.investigation, self.label = kind, investigation, label

            @classmethod
            async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item, match: Any) -> ActionButton:
                return cls(match["kind"], match["investigation"], getattr(item, "label", None))

            async def callback(self, interaction: discord.Interaction) -> None:
                async with listeners.acking():
                    await listeners.on_click(interaction, self.kind, self.investigation, self.label)

        return ActionButton

    async def _store_command(self, interaction: discord.Interaction, task: Task, what: str,
                             say: Callable[..., Awaitable[Any]]) -> Accepted | None:
        """Store a command's or a click's task. When it cannot be, tell the person privately (by
        `say`: the interaction's first answer, or its follow-up once deferred) and return None."""
        try:
            return await self._submit(task)
        except TaskRefused as e:
            log.warning("Discord: %s %s refused: %s", what, interaction.id, e)
            await say(tr.UNREADABLE, ephemeral=True)
        except Exception as e:
            if not is_transient(e):
                raise
            log.warning("Discord: %s %s not taken: %s", what, interaction.id, type(e).__name__)
            await say(tr.NOT_TAKEN, ephemeral=True)
        return None

    def acking(self) -> contextlib.AbstractAsyncContextManager:
        """Around storing an interaction and answering it: the engine holds back work not yet under
        way until the answer is out (`engine.intake`), so under a burst the 3-second window is met
        with room to spare and the acknowledgement does not queue behind other tasks' work."""
        intake = getattr(self.engine, "intake", None)
        return intake.taking() if intake is not None else contextlib.nullcontext()

    # --- wiring -------------------------------------------------------------------------------

    def install(self, client: discord.Client, tree: app_commands.CommandTree) -> None:
        """Add the app commands to the tree and the persistent button to the client."""
        self.client = client
        listeners = self
        async def start(interaction: discord.Interaction, problem: str, persona: str | None = None) -> None:
            async with listeners.acking():
                await listeners.on_investigate(interaction, problem, persona)

        async def complete(interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
            return listeners.persona_choices(typed)

        start = app_commands.autocomplete(persona=complete)(start)
        start = app_commands.describe(problem="What should we look into?", persona="Who leads (optional; the topic decides otherwise)")(start)
        investigate = app_commands.command(
            name="investigate", description="Start an investigation: the personas research, challenge and plan")(start)

        @app_commands.command(name="crew", description="A persona assembles a crew of AI agents for bigger work, in a thread")
        @app_commands.describe(text="What should the crew do? (empty in an investigation's thread: hand over its plan)",
                               domain="The kind of work (optional; the text decides otherwise)",
                               complexity="How big a crew: low 1, medium 2, high 3 agents (default medium)",
                               persona="Who leads it (optional; the domain decides otherwise)")
        @app_commands.choices(domain=[app_commands.Choice(name=d, value=d) for d in DOMAINS],
                              complexity=[app_commands.Choice(name=c, value=c) for c in COMPLEXITIES])
        async def crew(interaction: discord.Interaction, text: str | None = None, domain: str | None = None,
                       complexity: str | None = None, persona: str | None = None) -> None:
            async with listeners.acking():
                await listeners.on_crew(interaction, text, domain, complexity, persona)

        @crew.autocomplete("persona")
        async def complete_crew_persona(interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
            return listeners.persona_choices(typed)

        @app_commands.command(name="personas", description="Who the personas are, or one of them in full")
        @app_commands.describe(name="A persona's name (optional)")
        async def personas(interaction: discord.Interaction, name: str | None = None) -> None:
            await listeners.on_personas(interaction, name)

        @personas.autocomplete("name")
        async def complete_name(interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
            return listeners.persona_choices(typed)

        @app_commands.command(name="memory", description="What this channel remembers")
        async def memory(interaction: discord.Interaction) -> None:
            await listeners.on_memory(interaction)

        @app_commands.command(name="forget", description="Make this channel forget everything (admins)")
        async def forget(interaction: discord.Interaction) -> None:
            await listeners.on_forget(interaction)

        for command in (investigate, crew, personas, memory, forget, PersonaCommand(self).group()):
            tree.add_command(command, override=True)
        client.add_dynamic_items(self.button_class())
