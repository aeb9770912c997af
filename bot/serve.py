"""`orchestra serve` and Slack's HTTP mode: one HTTP server (uvicorn, in the bot's loop) with the
operator API, `/health`, `/ready`, `/metrics`, and Slack's `/slack/events` when Slack runs over
HTTP. The composition of that server lives here; `bot.cli` only calls it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.bootstrap import StartupError

if TYPE_CHECKING:
    from adapters.api.server import HttpServer
    from bot.bootstrap import App
    from bot.platforms import Platform
    from bot.settings import Settings

NOTHING_TO_SERVE = (
    "orchestra serve has nothing to serve: set ORCHESTRA_API_TOKEN (the operator API; e.g. "
    "`openssl rand -hex 32`), SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (Slack over HTTP), or DISCORD_TOKEN"
)


def check_can_serve(settings: "Settings") -> None:
    """Before anything is opened: a server with no API and no platform would answer only /health."""
    if not (settings.api_token or settings.has_chat_platform):
        raise StartupError(NOTHING_TO_SERVE)


def api_tokens(settings: "Settings"):
    from adapters.api.access import ApiTokens

    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    return ApiTokens(write=secret(settings.api_token), read=secret(settings.api_read_token))


def platform_connected(platform: Any) -> str | None:
    """None when the platform is connected, else what is wrong (for /ready)."""
    adapter = getattr(platform, "adapter", None)
    if platform.name == "slack":
        if adapter.identity is None:
            return "Slack is not connected yet"
        if platform.http_port is None and adapter.socket_handler is None:
            return "Slack's Socket Mode connection is not open"
        return None
    if platform.name == "discord":
        client = adapter.client
        return None if client.is_ready() and not client.is_closed() else "Discord is not connected"
    return None


def readiness_of(platforms: list["Platform"]):
    async def readiness() -> dict[str, str | None]:
        return {p.name: platform_connected(p) for p in platforms}

    return readiness


def http_server(app: "App", platforms: list["Platform"], *, host: str, port: int) -> "HttpServer":
    """The one server: the API's app, carrying Slack's route when Slack runs over HTTP. Call before
    `engine.start()`: it registers the API's outbox, so unfinished API tasks resume."""
    try:
        from adapters.api.app import create_app
        from adapters.api.server import HttpServer
    except ImportError as e:
        raise StartupError(
            f"the HTTP server's libraries are missing ({e.name}): pip install 'orchestra-personas[api]' "
            "(from a clone: pip install -e '.[api]')"
        ) from None
    slack = next((p for p in platforms if p.name == "slack" and getattr(p, "http_port", None) is not None), None)
    if slack is not None:
        slack.serves_itself = False  # its route is on this server
    api = create_app(app, tokens=api_tokens(app.settings), slack=slack.adapter if slack else None,
                     readiness=readiness_of(platforms), max_body=app.settings.api_max_body)
    return HttpServer(api, host=host, port=port)


async def start_server(server: "HttpServer") -> int:
    from adapters.api.server import ListenError

    try:
        return await server.start()
    except ListenError as e:
        raise StartupError(str(e), exit_code=2) from None
