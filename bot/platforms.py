"""The chat platforms the bot serves: which adapters have credentials, how each starts, checks its
credentials and stops (`build_platforms`, `verify_platforms`). Part of the composition root:
`bot.bootstrap` builds the engine and what it needs; this builds what people talk to it through.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Protocol, TextIO

from bot.bootstrap import App, StartupError
from bot.heap import settle_heap

class Platform(Protocol):
    name: str
    description: str

    async def run(self) -> None:
        """Serve until done (the terminal: end of input) or cancelled."""
        ...

    async def stop(self) -> None: ...


class SlackPlatform:
    name = "slack"

    def __init__(self, adapter, *, http_port: int | None, announce: Callable[[str], None] | None = None):
        self.adapter = adapter
        self.http_port = http_port
        self.announce = announce or (lambda line: print(line, flush=True))
        self.mode = f"HTTP on port {http_port}, /slack/events" if http_port is not None else "Socket Mode"
        self.description = f"Slack ({self.mode})"
        #: HTTP mode: False when `/slack/events` is on the server `bot.serve` runs (the API's)
        self.serves_itself = True

    async def verify(self) -> None:
        """Slack's word on the tokens, before the banner and before any work resumes."""
        from adapters.slack.app import SlackStartError

        try:
            await self.adapter.verify(socket_mode=self.http_port is None)
        except SlackStartError as e:
            raise StartupError(str(e), exit_code=2 if e.refused else 1) from None

    async def run(self) -> None:
        from adapters.slack.app import SlackStartError

        try:
            if self.http_port is None:
                identity = await self.adapter.start_socket_mode()
            elif self.serves_itself:
                await self.adapter.start_http(self.http_port)
                identity = self.adapter.identity
            else:
                self.adapter.served_elsewhere()
                identity = self.adapter.identity
        except SlackStartError as e:
            raise StartupError(str(e), exit_code=2 if e.refused else 1) from None
        settle_heap()
        self.announce(identity.connected(self.mode))
        await asyncio.Event().wait()  # the adapter serves in the background until cancelled

    async def stop(self) -> None:
        await self.adapter.stop()


class DiscordPlatform:
    """Discord through `adapters.discord.DiscordAdapter`: verify (log in, sync commands), hold the
    gateway connection, say once who we are and in how many servers."""

    name = "discord"

    def __init__(self, adapter, *, announce: Callable[[str], None] | None = None):
        self.adapter = adapter
        self.announce = announce or (lambda line: print(line, flush=True))
        self.description = "Discord (gateway)"

    async def verify(self) -> None:
        from adapters.discord.app import DiscordStartError

        try:
            await self.adapter.verify()
        except DiscordStartError as e:
            raise StartupError(str(e), exit_code=2 if e.refused else 1) from None

    async def run(self) -> None:
        """Until the connection ends for good (an error: every platform stops) or is cancelled."""
        from adapters.discord.app import DiscordStartError

        running = asyncio.create_task(self.adapter.run(), name="discord-gateway")
        ready = asyncio.create_task(self.adapter.client.wait_until_ready(), name="discord-ready")
        try:
            await asyncio.wait({running, ready}, return_when=asyncio.FIRST_COMPLETED)
            if ready.done() and not ready.cancelled() and ready.exception() is None:
                identity = self.adapter.identity
                settle_heap()
                self.announce(identity.connected(
                    len(self.adapter.client.guilds), message_content=self.adapter.settings.discord_message_content
                ))
            await running
        except DiscordStartError as e:
            raise StartupError(str(e), exit_code=2 if e.refused else 1) from None
        finally:
            for task in (ready, running):
                task.cancel()
            await asyncio.gather(ready, running, return_exceptions=True)

    async def stop(self) -> None:
        """Stop receiving; the client itself closes with the app (`App.aclose`), after the
        engine's last posts."""
        await self.adapter.stop_receiving()


async def verify_platforms(platforms: list[Platform]) -> None:
    """Let each platform that can check its credentials do so (the terminal has none)."""
    for platform in platforms:
        verify = getattr(platform, "verify", None)
        if verify is not None:
            await verify()


def build_platforms(
    app: App,
    *,
    slack_http: bool = False,
    port: int = 3000,
    channel: str = "terminal",
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    announce: Callable[[str], None] | None = None,
    terminal: bool = True,
) -> list[Platform]:
    """The adapters that have credentials (the terminal when none has and `terminal`), outboxes
    registered (the API's, platform "api", is registered by `bot.serve.http_server`).

    Call before `engine.start()`: resumed work needs its platform's outbox.
    """
    settings, engine = app.settings, app.engine
    platforms: list[Platform] = []
    if slack_http and not settings.slack_http_mode:
        raise StartupError("--slack-http needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
    if settings.slack_socket_mode or settings.slack_http_mode:
        try:
            from adapters.slack import SlackAdapter
        except ImportError as e:
            raise StartupError(
                f"Slack is configured but its libraries are missing ({e.name}): "
                "pip install 'orchestra-personas[slack]' (from a clone: pip install -e '.[slack]')"
            ) from None
        use_http = slack_http or not settings.slack_socket_mode
        adapter = SlackAdapter(settings, engine, persona_admin=app.persona_admin)
        engine.register_outbox("slack", adapter.outbox)
        platforms.append(SlackPlatform(adapter, http_port=port if use_http else None, announce=announce))
    if settings.discord_token:
        try:
            from adapters.discord import DiscordAdapter
        except ImportError as e:
            if not (e.name or "").startswith(("discord", "aiohttp", "yarl")):
                raise
            raise StartupError(
                f"Discord is configured but its libraries are missing ({e.name}): "
                "pip install 'orchestra-personas[discord]' (from a clone: pip install -e '.[discord]')"
            ) from None
        discord_adapter = DiscordAdapter(settings, engine, persona_admin=app.persona_admin)
        engine.register_outbox("discord", discord_adapter.outbox)
        app.on_close.append(discord_adapter.stop)
        platforms.append(DiscordPlatform(discord_adapter, announce=announce))
    if not platforms and terminal:
        from adapters.terminal import TerminalShell

        shell = TerminalShell(engine, channel=channel, stdin=stdin, stdout=stdout, persona_admin=app.persona_admin)
        engine.register_outbox(shell.name, shell.outbox)
        platforms.append(shell)
    return platforms
