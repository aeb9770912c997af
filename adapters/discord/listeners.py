"""Discord listeners: translate to a `Task`, store it with the engine, then answer.

Gateway messages need no acknowledgement, but interactions (slash commands, buttons) must be
answered within 3 seconds, and Discord does not send an answered interaction again: the task is
in SQLite (`engine.submit`, a few milliseconds) before the answer goes out (one POST,
`callback.py`). Anything slower (removing clicked buttons, refusals) runs afterwards, in the background (`later`).

Who starts a turn: a person (never a bot or a webhook, our own persona posts included) who
mentions the bot, writes to it in a DM, writes in a thread the engine knows, or replies to one of
our persona's messages (the engine looks the persona up by message id).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from adapters.discord import translate as tr
from adapters.discord.callback import DEFERRED_MESSAGE, DEFERRED_UPDATE, EPHEMERAL, MESSAGE, message_data, respond
from adapters.discord.outbox import DiscordOutbox
from adapters.discord.render import ACTION_CUSTOM_ID_RE, action_custom_id, taken_line
from adapters.listening import AfterAck, EnginePort, knows_persona
from engine.crews.request import COMPLEXITIES, DOMAINS, CrewRequest, CrewRequestError, crew_request, parse_crew_text
from engine.memory.errors import is_transient
from engine.models import Accepted, Task, TaskKind, TaskRefused

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

NOT_TAKEN = "Sorry, I couldn't take that just now. Nothing was started; please try again in a moment."
ACTION_WORDS = {"challenge": "Challenge", "plan": "Move to planning", "close": "Close", "crew": "Hand to a crew"}
#: A message's buttons count as used for this long after a click (until the edit removes them).
CLICK_WINDOW = 60.0


class _Recent:
    """Keys seen a moment ago in this process (refusals said once, clicks taken once)."""

    def __init__(self, window: float | None = None, size: int = 10_000):
        self.window, self.size = window, size
        self._seen: OrderedDict[Any, float] = OrderedDict()

    def first_time(self, key: Any) -> bool:
        now = time.monotonic()
        while self._seen and (len(self._seen) > self.size or (
                self.window is not None and now - next(iter(self._seen.values())) > self.window)):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def forget(self, key: Any) -> None:
        self._seen.pop(key, None)


def _parent_id(channel: Any) -> int | None:
    return getattr(channel, "parent_id", None) if isinstance(channel, discord.Thread) else None


class DiscordListeners:
    def __init__(self, engine: EnginePort, settings: Settings, outbox: DiscordOutbox):
        self.engine = engine
        self.outbox = outbox
        self.allowed_channels = set(getattr(settings, "allowed_channels", []) or [])
        self.allowed_users = set(getattr(settings, "allowed_users", []) or [])
        self.admin_roles = {str(r).strip().lower() for r in (getattr(settings, "discord_admin_roles", []) or []) if str(r).strip()}
        self.client: discord.Client | None = None
        self.refused = _Recent()
        self.clicks = _Recent(CLICK_WINDOW)
        self._after = AfterAck("Discord", log, lambda e: getattr(e, "text", None))
        self.idle = self._after.idle

    def later(self, work: Awaitable[Any], what: str) -> None:
        """Run `work` (a REST call: a thread to make, a refusal, buttons to remove) in the
        background, once every acknowledgement owed now has gone out (`engine.intake`): under a
        burst, interactions are stored and answered first, and these calls never delay that."""
        self._after.later(self._after_acks(work), what)

    async def _after_acks(self, work: Awaitable[Any]) -> Any:
        intake = getattr(self.engine, "intake", None)
        if intake is not None:
            await intake.settled()
        return await work

    # --- policy -------------------------------------------------------------------------------

    def allowed(self, channel: str, user: str, thread: str | None = None) -> bool:
        """ORCHESTRA_ALLOWED_CHANNELS may name a text channel (its threads included) or one
        thread of it; ORCHESTRA_ALLOWED_USERS, people."""
        return (not self.allowed_channels or channel in self.allowed_channels or thread in self.allowed_channels) and (
            not self.allowed_users or user in self.allowed_users)

    def is_admin(self, interaction: discord.Interaction) -> bool:
        perms = getattr(interaction, "permissions", None)
        if perms is not None and (perms.manage_guild or perms.administrator):
            return True
        roles = getattr(interaction.user, "roles", None) or []
        return any(str(r.id) in self.admin_roles or r.name.lower() in self.admin_roles for r in roles)

    async def _submit(self, task: Task) -> Accepted:
        accepted = await self.engine.submit(task)
        if accepted.duplicate:
            log.info("Discord: duplicate %s event %s ignored", task.kind.value, task.event_id)
        return accepted

    def _say(self, message: discord.Message, text: str, what: str) -> None:
        """A short reply from the bot that notifies nobody, once per message."""
        if self.refused.first_time((what, message.id)):
            self.later(message.reply(text, allowed_mentions=discord.AllowedMentions.none(), mention_author=False), what)

    # --- messages -----------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        client = self.client
        if client is None or client.user is None or not tr.from_person(message):
            return  # bots and webhooks (our own persona posts too) never start turns
        me = client.user.id
        if message.guild is not None and isinstance(message.channel, discord.PartialMessageable):
            await self._resolve_channel(message)
        channel, thread = tr.place(message)
        user = str(message.author.id)
        dm = message.guild is None
        if dm or tr.mentions_bot(message, me):
            if not self.allowed(channel, user, thread):
                self._say(message, tr.REFUSAL, "refuse a message")
                return
            task = tr.message_task(message, bot_id=me)
            top_level = thread is None and not dm
            if top_level:  # a top-level mention: its thread is made from it, named by the question
                self.outbox.name_thread(channel, str(message.id), task.text)
            if await self._take(message, task) and top_level:
                self.later(self.outbox.prepare(channel, str(message.id)), "prepare the thread")
            return
        if not self.allowed(channel, user, thread):
            return  # passive messages from people not allowed: silence
        workspace = tr.workspace_of(message.guild.id if message.guild else None)
        if thread is not None and await self.engine.is_known_thread(tr.PLATFORM, workspace, channel, thread):
            await self._take(message, tr.message_task(message, bot_id=me))
            return
        replied = await self._replied_to(message)
        if replied is not None and await self.outbox.is_ours(replied):
            await self._take(message, tr.message_task(message, bot_id=me))

    async def _replied_to(self, message: discord.Message) -> discord.Message | None:
        """The message `message` replies to. Discord usually sends it along; when it did not
        (`referenced_message` absent: "the backend did not attempt to fetch it"), it is read
        from discord.py's cache or fetched, so a reply to a persona still reaches her."""
        reference = message.reference
        if reference is None or message.type is not discord.MessageType.reply or not reference.message_id:
            return None
        if isinstance(reference.resolved, discord.Message):
            return reference.resolved
        if reference.resolved is not None:
            return None  # deleted
        cached = reference.cached_message
        if cached is not None:
            return cached
        assert self.client is not None
        where = reference.channel_id or message.channel.id
        try:
            guild_id = message.guild.id if message.guild else None
            return await self.client.get_partial_messageable(where, guild_id=guild_id).fetch_message(reference.message_id)
        except discord.HTTPException as e:
            log.info("Discord: could not read message %s that %s replies to (%s)", reference.message_id, message.id,
                     getattr(e, "text", None) or type(e).__name__)
            return None

    async def _resolve_channel(self, message: discord.Message) -> None:
        """A message in a channel discord.py has not cached (a thread it never saw, or one that
        was archived, which drops it from the cache) comes with a bare `PartialMessageable`:
        ask Discord what it is, so that a thread is taken as a thread of its parent channel."""
        assert self.client is not None
        try:
            message.channel = await self.client.fetch_channel(message.channel.id)  # type: ignore[assignment]
        except discord.HTTPException as e:
            log.info("Discord: could not look up channel %s (%s); taking it as a channel", message.channel.id,
                     getattr(e, "text", None) or type(e).__name__)

    async def _take(self, message: discord.Message, task: Task) -> bool:
        """Submit; Discord will not send the message again, so a failure is said to its author.
        True when a new task was stored (not a duplicate)."""
        try:
            return not (await self._submit(task)).duplicate
        except TaskRefused as e:
            log.warning("Discord: message %s refused, it can never be stored: %s", message.id, e)
            self._say(message, tr.UNREADABLE, "say a message was unreadable")
        except Exception as e:
            if not is_transient(e):  # a locked database, a slow disk, a server restarting
                raise
            log.warning("Discord: message %s not taken: %s", message.id, type(e).__name__)
            self._say(message, NOT_TAKEN, "say a message was not taken")
        return False

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
        if interaction.guild_id is None:
            where = "here"
        elif parent is not None:
            where = f"in its own thread in <#{parent}>"
        else:
            where = "in its own thread in this channel"
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
        if interaction.guild_id is None:
            where = "here"
        elif parent is not None:
            where = f"in its own thread in <#{parent}>"
        else:
            where = "in its own thread in this channel"
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
        quiet = discord.AllowedMentions.none()
        if len(text) <= tr.MAX_CONTENT:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=quiet)
        else:  # never cut: a long card goes in an embed (4,096 characters)
            await interaction.response.send_message(embed=discord.Embed(description=text[:4096]), ephemeral=True)

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
            await say(NOT_TAKEN, ephemeral=True)
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

        for command in (investigate, crew, personas, memory, forget):
            tree.add_command(command, override=True)
        client.add_dynamic_items(self.button_class())
