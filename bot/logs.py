"""Logging for a running Orchestra: one stream handler whose formatter scrubs secrets (tokens,
keys) from every line, tracebacks included, and quiet HTTP/SDK loggers below DEBUG."""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

from bot.settings import Settings

TOKEN_RE = re.compile(r"\b(xox[a-z]-|xapp-|sk-ant-|sk-|ntn_|secret_)[A-Za-z0-9_\-]{6,}")  # ntn_/secret_: Notion


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return TOKEN_RE.sub(lambda m: m.group(1) + "[redacted]", text)


class ScrubbingFormatter(logging.Formatter):
    """A second line of defence: whatever gets logged (tracebacks included), tokens do not."""

    def __init__(self, fmt: str, secrets: tuple[str, ...] = ()):
        super().__init__(fmt)
        self.secrets = tuple(sorted((s for s in secrets if len(s) >= 6), key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record), self.secrets)


def settings_secrets(settings: Settings) -> tuple[str, ...]:
    names = ("anthropic_api_key", "openai_api_key", "slack_bot_token", "slack_app_token", "slack_signing_secret", "discord_token",
             "notion_api_key", "api_token", "api_read_token")
    found = [v for v in (_secret(getattr(settings, n)) for n in names) if v]
    password = getattr(settings.db, "password", None)  # ORCHESTRA_DB=postgresql://user:password@...
    if password:  # as written in the URL, and decoded (p%40ss is p@ss to the driver)
        from urllib.parse import unquote

        found += [password, unquote(password), settings.db.get_secret_value()]
    return tuple(found)


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", settings_secrets(settings))
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    if settings.log_level != "DEBUG":
        for noisy in ("httpx", "httpcore", "aiosqlite", "slack_bolt", "slack_sdk"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None
