"""The Slack outbox: the engine's replies posted as the persona, paced per channel.

`working()` posts a placeholder ("_Sophia is thinking…_") in her name and returns its ts; the
engine keeps it (in SQLite, so a restart does not lose it) and asks for it to be replaced with
`post(reply, replace=ts)` (`chat.update`), so the thread does not fill with status lines.

Every message carries its key as message metadata (`orchestra_post`), so that after a crash
between Slack taking a post and the engine's record of it, `find_posted` finds it in the thread
(`conversations.replies` / `conversations.history` with `include_all_metadata`).
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

#: The message metadata event type that carries an engine key.
METADATA_EVENT = "orchestra_post"
#: How many messages `find_posted` reads at most (a thread's replies, or the channel's latest).
FIND_LIMIT = 1000


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
        #: The workspace's URL (`auth.test`), set by the adapter once verified: digests link threads.
        self.workspace_url: str | None = None
        self.pacer = pacer or ChannelPacer()
        self.on_unreachable = on_unreachable
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

    async def post(self, reply: Reply, replace: str | None = None, resume: PostedMessage | None = None) -> PostedMessage:
        messages = render_reply(reply, self.workspace_url)
        if resume is not None:
            return await self._complete(reply, messages, resume)
        first_ts: str | None = None
        thread = reply.thread
        for n, message in enumerate(messages):
            ts = None
            metadata = _metadata(reply.key, n)
            if n == 0 and replace:
                ts = await self._update(reply.channel, replace, message, metadata)
            if ts is None:
                ts = await self._post(reply.channel, thread, message, reply.voice, metadata)
            if first_ts is None:
                first_ts = ts
                if reply.kind is ReplyKind.ROOT and thread is None:
                    thread = ts  # the root opens the thread; its later parts go inside it
        assert first_ts is not None
        return PostedMessage(message_id=first_ts, thread=thread)

    async def working(self, voice: Voice, channel: str, thread: str | None, key: str = "") -> str | None:
        try:
            return await self._post(channel, thread, placeholder(voice), voice, _metadata(key, 0))
        except Exception as e:  # a status line is never worth failing a turn for
            log.warning("could not post the working placeholder in %s: %s", channel, slack_error(e) or type(e).__name__)
            return None

    async def find_posted(self, channel: str, thread: str | None, key: str) -> PostedMessage | None:
        """Our message with `key` (its first part), in the thread or among the channel's latest."""
        parts = await self._parts(channel, thread, key, first_only=True)
        if 0 not in parts:
            return None
        ts, thread_ts = parts[0]
        return PostedMessage(message_id=ts, thread=thread or thread_ts or ts)

    async def _complete(self, reply: Reply, messages: list[SlackMessage], first: PostedMessage) -> PostedMessage:
        """A split reply whose first part went out before a crash: post the parts still missing,
        in order, in the first part's thread."""
        if len(messages) > 1:
            thread = reply.thread or first.thread or first.message_id
            present = await self._parts(reply.channel, thread, reply.key)
            for n, message in enumerate(messages[1:], start=1):
                if n not in present:
                    await self._post(reply.channel, thread, message, reply.voice, _metadata(reply.key, n))
        return first

    async def _parts(
        self, channel: str, thread: str | None, key: str, *, first_only: bool = False
    ) -> dict[int, tuple[str, str | None]]:
        """The parts of our message with `key` found in the thread (or among the channel's latest
        messages): part number → (ts, thread_ts)."""
        found: dict[int, tuple[str, str | None]] = {}
        if not key:
            return found
        cursor: str | None = None
        read = 0
        while read < FIND_LIMIT:
            await self.pacer.acquire(channel)
            kwargs: dict[str, Any] = {"channel": channel, "include_all_metadata": True, "limit": 200}
            if cursor:
                kwargs["cursor"] = cursor
            async with self._in_flight():
                if thread:
                    response = await self.client.conversations_replies(ts=thread, **kwargs)
                else:
                    response = await self.client.conversations_history(**kwargs)
            messages = response.get("messages") or []
            read += len(messages)
            for message in messages:
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") == METADATA_EVENT and payload.get("key") == key:
                    part = payload.get("part") or 0
                    found.setdefault(int(part), (str(message["ts"]), message.get("thread_ts")))
                    if first_only and part == 0:
                        return found
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor or not messages:
                break
        return found

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

    async def _post(
        self, channel: str, thread: str | None, message: SlackMessage, voice: Voice, metadata: dict[str, Any] | None = None
    ) -> str:
        await self.pacer.acquire(channel)
        # link_names off, parse none: a plain "@here" in a post stays text (blocks.escape also defuses it)
        kwargs: dict[str, Any] = {
            "channel": channel, "text": message.text, "blocks": message.blocks, "link_names": False, "parse": "none", **identity(voice),
        }
        if metadata:
            kwargs["metadata"] = metadata
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

    async def _update(
        self, channel: str, ts: str, message: SlackMessage, metadata: dict[str, Any] | None = None
    ) -> str | None:
        """Replace the placeholder; None when it is gone and a fresh post is needed."""
        await self.pacer.acquire(channel)
        try:
            async with self._in_flight():
                await self.client.chat_update(
                    channel=channel, ts=ts, text=message.text, blocks=message.blocks, metadata=metadata,
                    link_names=False, parse="none",
                )
        except Exception as e:
            error = slack_error(e)
            if error in _UPDATE_GONE:
                log.info("placeholder %s in %s is gone (%s); posting anew", ts, channel, error)
                return None
            raise
        return ts


def _metadata(key: str, part: int) -> dict[str, Any] | None:
    """The engine's key, carried by the message itself (`find_posted` reads it back)."""
    if not key:
        return None
    payload: dict[str, Any] = {"key": key}
    if part:
        payload["part"] = part
    return {"event_type": METADATA_EVENT, "event_payload": payload}
