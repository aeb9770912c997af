"""The terminal's way out: print a reply as its persona and give it a local message id."""

from __future__ import annotations

from collections.abc import Callable

from adapters.terminal.render import Style, render_reply, render_working
from engine.models import PostedMessage, Reply, Voice

PLATFORM = "local"
WORKSPACE = "local"


class TerminalOutbox:
    """Implements `engine.ports.Outbox` by printing.

    `write=None` prints nothing (the CLI's `--json` mode); `on_posted` lets the shell follow the
    thread of what was just posted (a ROOT post opens a new thread: its own id); `width` says how
    wide to wrap, asked on every post (None, or a function returning None: no wrapping).
    """

    def __init__(
        self,
        write: Callable[[str], None] | None,
        style: Style,
        *,
        new_id: Callable[[], str],
        channel: str | None = None,
        on_posted: Callable[[Reply, PostedMessage], None] | None = None,
        width: Callable[[], int | None] | None = None,
    ):
        self._width = width
        self._write = write
        self.style = style
        self._new_id = new_id
        self.channel = channel
        self._on_posted = on_posted

    async def post(self, reply: Reply, replace: str | None = None, resume: PostedMessage | None = None) -> PostedMessage:
        if resume is not None:
            return resume  # never happens: `find_posted` finds nothing here
        message_id = self._new_id()
        posted = PostedMessage(message_id=message_id, thread=reply.thread or message_id)
        if self._write is not None:
            self._write(render_reply(reply, self.style, channel=self.channel, width=self._width() if self._width else None))
        if self._on_posted is not None:
            self._on_posted(reply, posted)
        return posted

    async def working(self, voice: Voice, channel: str, thread: str | None, key: str = "") -> str | None:
        """A printed line: nothing to replace later."""
        if self._write is not None:
            self._write(render_working(voice, self.style))
        return None

    async def find_posted(self, channel: str, thread: str | None, key: str) -> PostedMessage | None:
        """What was printed is gone with the process: a resumed task prints again."""
        return None
