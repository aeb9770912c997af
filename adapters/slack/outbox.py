"""The Slack outbox: the engine's replies posted as the persona, paced per channel.

`working()` posts a placeholder ("_Sophia is thinking…_") in her name; her next `post()` in
that thread replaces it with `chat.update`, so the thread does not fill with status lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from adapters.slack.pacing import ChannelPacer
from adapters.slack.render import SlackMessage, placeholder, render_reply
from engine.models import PostedMessage, Reply, ReplyKind, Voice

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

#: chat.update errors after which we post a fresh message instead (the placeholder is gone).
_UPDATE_GONE = {"message_not_found", "cant_update_message", "edit_window_closed", "msg_too_long"}
#: chat.postMessage errors that mean we cannot speak in this channel at all.
UNREACHABLE = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}

PlaceholderKey = tuple[str, str | None, str]  # channel, thread, persona name


def identity(voice: Voice) -> dict[str, str]:
    """Post as the persona: her name and her picture (needs chat:write.customize)."""
    icon = {"icon_url": voice.avatar_url} if voice.avatar_url else {"icon_emoji": voice.emoji}
    return {"username": voice.display_name, **icon}


def slack_error(exc: Exception) -> str | None:
    """The Slack error code of a SlackApiError (`not_in_channel`, ...), else None."""
    response = getattr(exc, "response", None)
    try:
        return response.get("error") if response is not None else None  # type: ignore[union-attr]
    except Exception:  # pragma: no cover - a response without a body
        return None


class SlackOutbox:
    """Implements `engine.ports.Outbox` for Slack."""

    def __init__(
        self,
        client: "AsyncWebClient",
        pacer: ChannelPacer | None = None,
        on_unreachable: Callable[[str, str], Awaitable[None]] | None = None,
    ):
        self.client = client
        self.pacer = pacer or ChannelPacer()
        self.on_unreachable = on_unreachable
        self._placeholders: dict[PlaceholderKey, str] = {}
        self._busy = 0  # Web API calls in flight (shutdown waits for them)
        self._quiet = asyncio.Event()
        self._quiet.set()

    @contextlib.asynccontextmanager
    async def _in_flight(self) -> AsyncIterator[None]:
        self._busy += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy:
                self._quiet.set()

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until no Web API call is in flight (at most `timeout` s); True when quiet."""
        try:
            await asyncio.wait_for(self._quiet.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    # --- the Outbox port ----------------------------------------------------------------------

    async def post(self, reply: Reply) -> PostedMessage:
        messages = render_reply(reply)
        key: PlaceholderKey = (reply.channel, reply.thread, reply.voice.name)
        first_ts: str | None = None
        thread = reply.thread
        waiting = self._placeholders.pop(key, None)
        for n, message in enumerate(messages):
            ts = None
            if n == 0 and waiting:
                ts = await self._update(reply.channel, waiting, message)
            if ts is None:
                ts = await self._post(reply.channel, thread, message, reply.voice)
            if first_ts is None:
                first_ts = ts
                if reply.kind is ReplyKind.ROOT and thread is None:
                    thread = ts  # the root opens the thread; its later parts go inside it
        assert first_ts is not None
        return PostedMessage(message_id=first_ts, thread=thread)

    async def working(self, voice: Voice, channel: str, thread: str | None) -> None:
        key: PlaceholderKey = (channel, thread, voice.name)
        if key in self._placeholders:
            return  # already showing; the next post replaces it
        try:
            self._placeholders[key] = await self._post(channel, thread, placeholder(voice), voice)
        except Exception as e:  # a status line is never worth failing a turn for
            log.warning("could not post the working placeholder in %s: %s", channel, slack_error(e) or type(e).__name__)

    # --- the bot's own voice (refusals) --------------------------------------------------------

    async def post_ephemeral(self, channel: str, user: str, text: str, thread: str | None = None) -> None:
        await self.pacer.acquire(channel)
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text, "link_names": False, "parse": "none"}
        if thread:
            kwargs["thread_ts"] = thread
        async with self._in_flight():
            await self.client.chat_postEphemeral(**kwargs)

    async def update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        """Rewrite one of our messages (a clicked turn loses its buttons), paced like any post.
        Errors are raised: the caller decides what a failure means."""
        await self.pacer.acquire(channel)
        async with self._in_flight():
            await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks, link_names=False, parse="none")

    # --- internals ----------------------------------------------------------------------------

    async def _post(self, channel: str, thread: str | None, message: SlackMessage, voice: Voice) -> str:
        await self.pacer.acquire(channel)
        # link_names off, parse none: a plain "@here" in a post stays text (render.escape also defuses it)
        kwargs: dict[str, Any] = {
            "channel": channel, "text": message.text, "blocks": message.blocks, "link_names": False, "parse": "none", **identity(voice),
        }
        if thread:
            kwargs["thread_ts"] = thread
        try:
            async with self._in_flight():
                response = await self.client.chat_postMessage(**kwargs)
        except Exception as e:
            error = slack_error(e)
            if error in UNREACHABLE and self.on_unreachable is not None:
                try:
                    await self.on_unreachable(channel, error)
                except Exception:  # the original failure is what matters
                    log.exception("could not tell anyone that %s is unreachable", channel)
            raise
        return str(response["ts"])

    async def _update(self, channel: str, ts: str, message: SlackMessage) -> str | None:
        """Replace the placeholder; None when it is gone and a fresh post is needed."""
        await self.pacer.acquire(channel)
        try:
            async with self._in_flight():
                await self.client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks, link_names=False, parse="none")
        except Exception as e:
            error = slack_error(e)
            if error in _UPDATE_GONE:
                log.info("placeholder %s in %s is gone (%s); posting anew", ts, channel, error)
                return None
            raise
        return ts
