"""Mentions and messages from Socket Mode taken without Bolt's dispatch: stored, then acknowledged.

Why: in a burst, envelopes arrive together and each one's ack waits for the ones before it. Bolt's
dispatch of one Events API envelope (a request and context object, its middleware chain, every
listener's matcher, argument injection) costs about three quarters of the CPU between the envelope
arriving and its ack being written, while our two event listeners need only the event, the bot's
user id and the workspace id. So an `events_api` envelope whose event is an `app_mention` or a
`message` goes straight to the same listener methods Bolt would have called
(`SlackListeners.on_mention` / `on_message`: translate, store with the engine), and its ack is
written when they return, exactly as Bolt's handler would write it. Nothing about the guarantees
changes: the ack still follows the insert, a duplicate is still recognised by the engine, and an
error gets the answer `SlackListeners.on_error` gives it on the Bolt path (a 200 is acked; anything
else is not, so Slack sends the envelope again).

HTTP mode takes the same shortcut (`adapters.slack.http`), after checking the request's
signature: a JSON body carrying such an event gets its 200 from `answer`, with no Bolt request.

Everything else (slash commands, button clicks, other events, an envelope of a shape Slack does
not send) goes through Bolt as before.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.request.internals import extract_team_id
from slack_bolt.response import BoltResponse

from adapters.slack.translate import envelope_problem

if TYPE_CHECKING:
    from adapters.slack.listeners import SlackListeners

log = logging.getLogger(__name__)

#: The event types our listeners are registered for in Bolt (`SlackListeners.register`).
EVENT_TYPES = ("app_mention", "message")


@dataclass(frozen=True)
class EventContext:
    """The two fields of Bolt's context our event listeners read."""

    bot_user_id: str
    team_id: str | None


class EventShortcut:
    """`take(client, request)`: True once the envelope was handled (and acked when it should
    be); False for anything it leaves to Bolt."""

    def __init__(self, listeners: "SlackListeners", bot_user_id: str, bot_id: str | None) -> None:
        self.listeners = listeners
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id

    def _event_of(self, payload: Any) -> dict[str, Any] | None:
        if envelope_problem(payload) is not None or payload.get("type") != "event_callback":
            return None
        event = payload["event"]
        return event if event["type"] in EVENT_TYPES else None

    def _own(self, event: dict[str, Any]) -> bool:
        """What Bolt's IgnoringSelfEvents middleware acks without running a listener."""
        user, bot_id = event.get("user"), event.get("bot_id")
        return (user is not None and user == self.bot_user_id) or (bot_id is not None and bot_id == self.bot_id)

    async def answer(self, payload: Any) -> BoltResponse | None:
        """The answer for an Events API body (Socket Mode's envelope payload, or an HTTP request's
        JSON) once its event is stored, or refused as Bolt's error handler would refuse it; None
        for anything left to Bolt."""
        event = self._event_of(payload)
        if event is None:
            return None
        try:
            team_id = extract_team_id(payload)
        except Exception:  # noqa: BLE001 - an odd `authorizations`: Bolt decides what it is
            return None
        if self._own(event):
            return BoltResponse(status=200, body="")
        context = EventContext(bot_user_id=self.bot_user_id, team_id=team_id if isinstance(team_id, str) else None)
        try:
            if event["type"] == "app_mention":
                await self.listeners.on_mention(event, context)
            else:
                await self.listeners.on_message(event, context)
        except Exception as error:  # noqa: BLE001 - answered as Bolt's error handler would
            return await self.listeners.on_error(error, payload)
        return BoltResponse(status=200, body="")

    async def take(self, client: Any, request: Any) -> bool:
        """Socket Mode: answer an `events_api` envelope and write its ack as Bolt's handler would."""
        if request.type != "events_api":
            return False
        started = time.time()
        response = await self.answer(request.payload)
        if response is None:
            return False
        await send_async_response(client, request, response, started)
        return True
