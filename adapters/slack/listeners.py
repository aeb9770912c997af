"""Bolt listeners: translate to a `Task`, store it with the engine, then acknowledge.

Bolt runs with `process_before_response=True`: the acknowledgement (the HTTP 200, the Socket
Mode ack) goes out when the listener returns, so an event is in SQLite (`engine.submit`, a few
milliseconds) before Slack hears it was received. Anything slower (posts, `respond()`, button
updates) runs after the ack, in the background (`later`), so the 3 s window is never at risk.

What cannot be taken is answered here (`on_error`): a malformed payload gets a 400 and one log
line; an event that can never be stored (`TaskRefused`) a 200, so that Slack does not resend it;
a transient failure (a locked database) a 503, so that Slack retries it.

A button click is taken once per message: the message's buttons are then replaced by a line
saying who asked for what (`chat.update`), and a second click on the same message arriving
before that update lands is dropped here (`RecentClicks`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse

from adapters.listening import AfterAck, EnginePort, knows_persona
from adapters.slack import translate as tr
from adapters.slack.blocks import ACTION_ID_RE, escape, replace_actions
from adapters.slack.outbox import SlackOutbox, slack_error
from engine.crews.request import CrewRequestError, parse_crew_text
from engine.memory.errors import is_transient
from engine.models import Task, TaskKind, TaskRefused

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.settings import Settings

log = logging.getLogger(__name__)

#: Response URLs stay valid for 30 minutes; we use them only to say "invite me first".
RESPONSE_URL_TTL = 25 * 60


class PersonaAdminPort(Protocol):
    """The persona admin service (`engine.personas.admin.PersonaAdmin`): a command's text in, an
    answer out; a refusal is a `PersonaEditError` whose message is for the person."""

    async def run(self, text: str, *, actor: str) -> str: ...


class SlackListeners:
    def __init__(self, engine: EnginePort, settings: "Settings", outbox: SlackOutbox, *,
                 persona_admin: "PersonaAdminPort | None" = None):
        self.engine = engine
        self.persona_admin = persona_admin
        self.outbox = outbox
        self.allowed_channels = set(settings.allowed_channels)
        self.allowed_users = set(settings.allowed_users)
        self.admins = set(settings.slack_admins)
        self.recent = tr.RecentIds()
        self.clicks = tr.RecentClicks()
        # channel -> (respond, when): the last /investigate there, to report "I'm not in here"
        self._responders: dict[str, tuple[Callable[..., Awaitable[Any]], float]] = {}
        self._after_ack = AfterAck("Slack", log, slack_error)
        self.later, self.idle = self._after_ack.later, self._after_ack.idle  # a post never delays an ack

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
        channel, user, ts = tr.event_place(event)
        bot = context.bot_user_id
        event_id = tr.message_event_id(channel, ts)
        thread = event.get("thread_ts") or ts
        if not self.allowed(channel, user):
            if self.recent.first_time(event_id):
                where = thread if event.get("thread_ts") else None
                self.later(self.outbox.post_ephemeral(channel, user, tr.REFUSAL, thread=where), "refuse privately")
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
        channel, user, ts = tr.event_place(event)
        if event.get("channel_type") == "im":
            await self.converse(event, context)
            return
        if tr.mentions(event.get("text") or "", bot):
            # the app_mention event for this message says the same: both submit the same
            # task (same event id) and the engine keeps one
            await self.converse(event, context)
            return
        thread = event.get("thread_ts")
        if not thread or thread == ts:
            return  # top-level chatter that does not mention us
        if not self.allowed(channel, user):
            return  # passive messages from people not allowed: silence
        workspace = context.team_id or ""
        if not await self.engine.is_known_thread(tr.PLATFORM, workspace, channel, thread):
            return
        await self._submit(tr.message_task(event, workspace=workspace, bot_user_id=bot, thread=thread))

    # --- slash commands -----------------------------------------------------------------------

    async def on_investigate(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        channel, user = tr.command_place(command)
        text = tr.command_text(command)
        if not text or self._only_a_name(text):
            await ack()
            self.later(respond(text=tr.usage_text(), response_type="ephemeral"), "send /investigate usage")
            return
        if not self.allowed(channel, user):
            await ack(text=tr.REFUSAL)
            return
        self._remember_responder(channel, respond)
        await self._submit(tr.command_task(command, TaskKind.INVESTIGATE))
        # the ack goes out when this returns: after the task is stored
        await ack(text=f":mag_right: Starting an investigation: _{escape(text[:200])}_")

    async def on_crew(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        """`/crew [options] TEXT`: options the person must fix are answered at once, privately,
        in the ack itself (nothing is submitted); the crew's posts come in a new thread."""
        channel, user = tr.command_place(command)
        text = tr.command_text(command)
        try:
            request = parse_crew_text(text)
        except CrewRequestError as e:
            await ack(text=tr.crew_error_text(str(e)))
            return
        if not request.text or self._only_a_name(request.text):
            await ack(text=tr.crew_usage_text())
            return
        if not self.allowed(channel, user):
            await ack(text=tr.REFUSAL)
            return
        self._remember_responder(channel, respond)
        await self._submit(tr.crew_task(command, request))
        what = ", ".join(v for v in (request.domain, f"{request.complexity} complexity") if v)
        await ack(text=f":busts_in_silhouette: Assembling a crew ({what}): _{escape(request.text[:200])}_")

    def _only_a_name(self, text: str) -> bool:
        """`/investigate sophia` (or `Karen:`): a persona to lead, but no question for her."""
        word = text.strip().strip("@:,;.-–—!? \t").strip()
        return bool(word) and " " not in word and knows_persona(self.engine, word)

    async def on_personas(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        name = tr.command_text(command).lstrip("@")
        if name:
            card = self.engine.persona_card(name)
            text = card or f"I don't know a persona called *{escape(name)}*.\n\n{self.engine.personas_overview()}"
        else:
            text = self.engine.personas_overview() + "\n\n`/personas NAME` shows one of them in full."
        self.later(respond(text=text, response_type="ephemeral"), "answer /personas")

    async def on_memory(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        channel, user = tr.command_place(command)
        await ack()
        if not self.allowed(channel, user):
            self.later(respond(text=tr.REFUSAL, response_type="ephemeral"), "refuse /memory")
            return
        summaries = await self.engine.memory_list(tr.PLATFORM, tr.command_team(command), channel)
        self.later(respond(text=tr.memory_text(summaries), response_type="ephemeral"), "answer /memory")

    async def on_forget(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        channel, user = tr.command_place(command)
        await ack()
        if not self.admins:
            self.later(respond(text=tr.FORGET_NO_ADMINS, response_type="ephemeral"), "answer /forget")
            return
        if user not in self.admins:
            self.later(respond(text=tr.FORGET_REFUSAL, response_type="ephemeral"), "refuse /forget")
            return
        result = await self.engine.memory_forget(tr.PLATFORM, tr.command_team(command), channel)
        self.later(respond(text=tr.forget_text(result), response_type="ephemeral"), "answer /forget")

    async def on_persona(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        """`/persona set sophia humor=0.3` (create, archive, history): admins only."""
        _, user = tr.command_place(command)
        await ack()
        if not self.admins or user not in self.admins:
            refusal = tr.PERSONA_NO_ADMINS if not self.admins else tr.PERSONA_REFUSAL
            self.later(respond(text=refusal, response_type="ephemeral"), "refuse /persona")
            return
        if self.persona_admin is None:
            self.later(respond(text="Persona admin is not available in this bot.", response_type="ephemeral"),
                       "answer /persona")
            return
        text = tr.command_text(command)
        # after the ack (it goes out when this returns): a write to Notion may take a while
        self.later(self._persona_answer(text, user, respond), "answer /persona")

    async def _persona_answer(self, text: str, user: str, respond: Any) -> None:
        from engine.personas.edit import PersonaEditError

        try:
            answer = await self.persona_admin.run(text, actor=f"{tr.PLATFORM}:{user}")
        except PersonaEditError as e:
            answer = str(e)
        except Exception:  # noqa: BLE001 - the person gets a line, the log the details
            log.exception("/persona %r failed", text[:80])
            answer = "Sorry, that did not work (details are in Orchestra's log); nothing was changed."
        shown = f"```{escape(answer)}```" if "\n" in answer else escape(answer)
        await respond(text=shown, response_type="ephemeral")

    # --- buttons ------------------------------------------------------------------------------

    async def on_action(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        """The ack goes out when this returns: after the click's task is stored."""
        match = ACTION_ID_RE.match(str(action.get("action_id", "")))
        if not match:
            await ack()
            return
        task = tr.action_task(body, action, TaskKind(match.group(1)))
        if task is None:
            raise tr.Malformed("a button click without its message, channel or user")
        if not self.allowed(task.channel, task.user):
            await ack()
            self.later(respond(text=tr.REFUSAL, response_type="ephemeral", replace_original=False), "refuse a click")
            return
        clicked = tr.clicked_message(body)
        key = (clicked[0], clicked[1]) if clicked else None
        if key is not None and not self.clicks.claim(key):
            log.info("%s click by %s on %s in %s ignored: that message's buttons were just used", task.kind.value, task.user, key[1], key[0])
            await ack()
            return
        try:
            await self._submit(task)
        except BaseException:
            if key is not None:
                self.clicks.release(key)
            raise
        await ack()
        if clicked is not None:
            self.later(self._show_taken(clicked, action, match.group(1), task.user), "remove the clicked buttons")

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

    # --- what could not be taken ---------------------------------------------------------------

    async def on_error(self, error: Exception, body: Any) -> BoltResponse:
        """One log line and an answer that tells Slack whether to send it again."""
        what = tr.describe(body)
        if isinstance(error, BoltUnhandledRequestError):
            if isinstance(body, dict) and body.get("type") == "event_callback" and isinstance(body.get("event"), dict):
                log.debug("Slack: %s not handled here", what)  # subscribed but not ours: fine
                return BoltResponse(status=200, body="")
            log.warning("Slack: %s not understood", what)
            return BoltResponse(status=404, body="not found")
        if isinstance(error, TaskRefused):
            # never storable: a retry cannot help, so Slack hears it was received
            log.warning("Slack: %s refused, it can never be stored: %s", what, error)
            event = body.get("event") if isinstance(body, dict) else None
            if isinstance(event, dict) and isinstance(event.get("channel"), str) and isinstance(event.get("user"), str):
                if self.recent.first_time(f"refused:{event.get('channel')}:{event.get('ts')}"):
                    self.later(self.outbox.post_ephemeral(event["channel"], event["user"], tr.UNREADABLE), "say a message was unreadable")
            elif isinstance(body, dict) and body.get("command"):
                return BoltResponse(status=200, body=tr.UNREADABLE)
            return BoltResponse(status=200, body="")
        if isinstance(error, tr.MALFORMED):
            log.warning("Slack: %s refused as malformed: %s", what, tr.error_line(error))
            return BoltResponse(status=400, body="malformed request")
        if is_transient(error):
            # transient: Slack sends it again (HTTP) or re-delivers the envelope (Socket Mode)
            log.warning("Slack: %s not taken, Slack will retry it: %s", what, tr.error_line(error))
            return BoltResponse(status=503, body="try again")
        log.error("Slack: %s failed", what, exc_info=error)
        return BoltResponse(status=500, body="")

    # --- wiring -------------------------------------------------------------------------------

    def register(self, app: "AsyncApp") -> None:
        """Closures, not bound methods: Bolt injects arguments by parameter name."""

        @app.error
        async def error(error: Exception, body: Any) -> BoltResponse:
            return await self.on_error(error, body)

        @app.event("app_mention")
        async def app_mention(event: dict[str, Any], context: Any) -> None:
            await self.on_mention(event, context)

        @app.event("message")
        async def message(event: dict[str, Any], context: Any) -> None:
            await self.on_message(event, context)

        @app.command("/investigate")
        async def investigate(ack: Any, command: dict[str, Any], respond: Any) -> None:
            await self.on_investigate(ack, command, respond)

        @app.command("/crew")
        async def crew(ack: Any, command: dict[str, Any], respond: Any) -> None:
            await self.on_crew(ack, command, respond)

        @app.command("/personas")
        async def personas(ack: Any, command: dict[str, Any], respond: Any) -> None:
            await self.on_personas(ack, command, respond)

        @app.command("/persona")
        async def persona(ack: Any, command: dict[str, Any], respond: Any) -> None:
            await self.on_persona(ack, command, respond)

        @app.command("/memory")
        async def memory(ack: Any, command: dict[str, Any], respond: Any) -> None:
            await self.on_memory(ack, command, respond)

        @app.command("/forget")
        async def forget(ack: Any, command: dict[str, Any], respond: Any) -> None:
            await self.on_forget(ack, command, respond)

        @app.action(ACTION_ID_RE)
        async def button(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
            await self.on_action(ack, body, action, respond)
