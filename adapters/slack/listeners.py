"""Bolt listeners: acknowledge first, translate to a `Task`, hand it to the engine.

Events are acknowledged by Bolt before our listener runs (`process_before_response=False`);
commands and buttons call `ack()` as their first line. Everything after that is a quick
`engine.submit()` (a SQLite insert): the persona's work happens later, in the engine.

A button click is taken once per message: the message's buttons are then replaced by a line
saying who asked for what (`chat.update`), and a second click on the same message arriving
before that update lands is dropped here (`RecentClicks`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from adapters.slack import translate as tr
from adapters.slack.outbox import SlackOutbox, slack_error
from adapters.slack.render import ACTION_ID_RE, escape, replace_actions
from engine.memory.records import ForgetResult, ThreadSummary
from engine.models import Accepted, Task, TaskKind

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.settings import Settings

log = logging.getLogger(__name__)

#: Response URLs stay valid for 30 minutes; we use them only to say "invite me first".
RESPONSE_URL_TTL = 25 * 60


class EnginePort(Protocol):
    """What the adapter needs from the engine (`engine.engine.Engine` has it)."""

    async def submit(self, task: Task) -> Accepted: ...
    async def is_known_thread(self, platform: str, workspace: str, channel: str, thread: str) -> bool: ...
    async def memory_list(self, platform: str, workspace: str, channel: str) -> list[ThreadSummary]: ...
    async def memory_forget(self, platform: str, workspace: str, channel: str) -> ForgetResult: ...
    def persona_card(self, name: str) -> str | None: ...
    def personas_overview(self) -> str: ...


class SlackListeners:
    def __init__(self, engine: EnginePort, settings: "Settings", outbox: SlackOutbox):
        self.engine = engine
        self.outbox = outbox
        self.allowed_channels = set(settings.allowed_channels)
        self.allowed_users = set(settings.allowed_users)
        self.admins = set(settings.slack_admins)
        self.recent = tr.RecentIds()
        self.clicks = tr.RecentClicks()
        # channel -> (respond, when): the last /investigate there, to report "I'm not in here"
        self._responders: dict[str, tuple[Callable[..., Awaitable[Any]], float]] = {}

    # --- policy -------------------------------------------------------------------------------

    def allowed(self, channel: str, user: str) -> bool:
        channel_ok = not self.allowed_channels or channel in self.allowed_channels
        user_ok = not self.allowed_users or user in self.allowed_users
        return channel_ok and user_ok

    async def _submit(self, task: Task) -> None:
        accepted = await self.engine.submit(task)
        if accepted.duplicate:
            log.info("duplicate %s event %s ignored", task.kind.value, task.event_id)

    # --- messages -----------------------------------------------------------------------------

    async def converse(self, event: dict[str, Any], context: Any) -> None:
        """A mention (or a DM): answer in the thread under it, whatever the thread is."""
        channel, user, ts = event["channel"], event["user"], event["ts"]
        bot = context.bot_user_id
        event_id = tr.message_event_id(channel, ts)
        thread = event.get("thread_ts") or ts
        if not self.allowed(channel, user):
            if self.recent.first_time(event_id):
                await self.outbox.post_ephemeral(channel, user, tr.REFUSAL, thread=thread if event.get("thread_ts") else None)
            return
        # An empty mention is submitted too: the engine answers with how to ask and who is who
        # (in SQLite-deduplicated form, so a retry never repeats the hint).
        await self._submit(tr.message_task(event, workspace=context.team_id or "", bot_user_id=bot, thread=thread))

    async def on_mention(self, event: dict[str, Any], context: Any) -> None:
        if not tr.from_person(event, context.bot_user_id):
            return
        await self.converse(event, context)

    async def on_message(self, event: dict[str, Any], context: Any) -> None:
        bot = context.bot_user_id
        if not tr.from_person(event, bot):
            return  # bots (ours included), edits, deletions, joins…
        if event.get("channel_type") == "im":
            await self.converse(event, context)
            return
        if tr.mentions(event.get("text", ""), bot):
            # the app_mention event for this message says the same: both submit the same
            # task (same event id) and the engine keeps one
            await self.converse(event, context)
            return
        thread, ts = event.get("thread_ts"), event["ts"]
        if not thread or thread == ts:
            return  # top-level chatter that does not mention us
        channel, user = event["channel"], event["user"]
        if not self.allowed(channel, user):
            return  # passive messages from people not allowed: silence
        workspace = context.team_id or ""
        if not await self.engine.is_known_thread(tr.PLATFORM, workspace, channel, thread):
            return
        await self._submit(tr.message_task(event, workspace=workspace, bot_user_id=bot, thread=thread))

    # --- slash commands -----------------------------------------------------------------------

    async def on_investigate(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        text = (command.get("text") or "").strip()
        if not text:
            await ack()
            await respond(text=tr.usage_text(), response_type="ephemeral")
            return
        if not self.allowed(command["channel_id"], command["user_id"]):
            await ack(text=tr.REFUSAL)
            return
        await ack(text=f":mag_right: Starting an investigation: _{escape(text[:200])}_")
        self._remember_responder(command["channel_id"], respond)
        await self._submit(tr.command_task(command, TaskKind.INVESTIGATE))

    async def on_personas(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        name = (command.get("text") or "").strip().lstrip("@")
        if name:
            card = self.engine.persona_card(name)
            text = card or f"I don't know a persona called *{escape(name)}*.\n\n{self.engine.personas_overview()}"
        else:
            text = self.engine.personas_overview() + "\n\n`/personas NAME` shows one of them in full."
        await respond(text=text, response_type="ephemeral")

    async def on_memory(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        if not self.allowed(command["channel_id"], command["user_id"]):
            await respond(text=tr.REFUSAL, response_type="ephemeral")
            return
        summaries = await self.engine.memory_list(tr.PLATFORM, command.get("team_id", ""), command["channel_id"])
        await respond(text=tr.memory_text(summaries), response_type="ephemeral")

    async def on_forget(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        if not self.admins:
            await respond(text=tr.FORGET_NO_ADMINS, response_type="ephemeral")
            return
        if command["user_id"] not in self.admins:
            await respond(text=tr.FORGET_REFUSAL, response_type="ephemeral")
            return
        result = await self.engine.memory_forget(tr.PLATFORM, command.get("team_id", ""), command["channel_id"])
        await respond(text=tr.forget_text(result), response_type="ephemeral")

    # --- buttons ------------------------------------------------------------------------------

    async def on_action(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        await ack()
        match = ACTION_ID_RE.match(action.get("action_id", ""))
        if not match:
            return
        task = tr.action_task(body, action, TaskKind(match.group(1)))
        if task is None:
            log.warning("button click without a message context ignored")
            return
        if not self.allowed(task.channel, task.user):
            await respond(text=tr.REFUSAL, response_type="ephemeral", replace_original=False)
            return
        clicked = tr.clicked_message(body)
        key = (clicked[0], clicked[1]) if clicked else None
        if key is not None and not self.clicks.claim(key):
            log.info("%s click by %s on %s in %s ignored: that message's buttons were just used", task.kind.value, task.user, key[1], key[0])
            return
        try:
            await self._submit(task)
        except BaseException:
            if key is not None:
                self.clicks.release(key)
            raise
        if clicked is not None:
            await self._show_taken(clicked, action, match.group(1), task.user)

    async def _show_taken(
        self, clicked: tuple[str, str, str, list[dict[str, Any]] | None], action: dict[str, Any], kind: str, user: str
    ) -> None:
        """Replace the clicked message's buttons by "↪ Challenge requested by @who". Never raises:
        the task is already submitted, and a message that keeps its buttons is only cosmetic."""
        channel, ts, text, blocks = clicked
        try:
            if blocks is None:
                log.info("the click on %s in %s carried no blocks; its buttons stay", ts, channel)
                return
            label = (action.get("text") or {}).get("text") or tr.ACTION_WORDS[kind]
            updated = replace_actions(blocks, action.get("block_id"), tr.action_taken_text(str(label), user))
            if updated is None:
                return  # no buttons left to replace
            await self.outbox.update_message(channel, ts, text, updated)
        except Exception as e:  # the click is taken either way: a failure is only logged
            log.warning("could not remove the buttons of %s in %s: %s", ts, channel, slack_error(e) or type(e).__name__)

    # --- "I can't post here" ------------------------------------------------------------------

    def _remember_responder(self, channel: str, respond: Callable[..., Awaitable[Any]]) -> None:
        now = time.monotonic()
        self._responders[channel] = (respond, now)
        if len(self._responders) > 1000:
            for key, (_, when) in list(self._responders.items()):
                if now - when > RESPONSE_URL_TTL:
                    del self._responders[key]

    async def tell_unreachable(self, channel: str, error: str) -> None:
        """The outbox could not post in `channel`: tell whoever just asked there, privately."""
        entry = self._responders.pop(channel, None)
        if entry and time.monotonic() - entry[1] < RESPONSE_URL_TTL:
            await entry[0](text=tr.unreachable_text(error), response_type="ephemeral")

    # --- wiring -------------------------------------------------------------------------------

    def register(self, app: "AsyncApp") -> None:
        """Closures, not bound methods: Bolt injects arguments by parameter name."""

        @app.event("app_mention")
        async def app_mention(event: dict[str, Any], context: Any) -> None:
            await self.on_mention(event, context)

        @app.event("message")
        async def message(event: dict[str, Any], context: Any) -> None:
            await self.on_message(event, context)

        @app.command("/investigate")
        async def investigate(ack: Any, command: dict[str, Any], respond: Any) -> None:
            await self.on_investigate(ack, command, respond)

        @app.command("/personas")
        async def personas(ack: Any, command: dict[str, Any], respond: Any) -> None:
            await self.on_personas(ack, command, respond)

        @app.command("/memory")
        async def memory(ack: Any, command: dict[str, Any], respond: Any) -> None:
            await self.on_memory(ack, command, respond)

        @app.command("/forget")
        async def forget(ack: Any, command: dict[str, Any], respond: Any) -> None:
            await self.on_forget(ack, command, respond)

        @app.action(ACTION_ID_RE)
        async def button(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
            await self.on_action(ack, body, action, respond)
