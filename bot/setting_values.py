"""How one setting's text becomes its value: lists, server and shard ids, the database's location,
Discord URLs, switches, pasted tokens.

Plain functions the `Settings` validators call (the scheduled jobs' values are in
`bot.job_settings`). Each raises `ValueError` with what to write instead; `load_settings` puts the
setting's name in front. A value that may hold a secret (a database URL, a token) is never echoed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit


class PostgresURL:
    """ORCHESTRA_DB naming a PostgreSQL database. The URL may carry a password, so `str()` and
    `repr()` (the banner, logs, errors, a settings dump) show it without one
    (`engine.memory.url.safe_url`); only `get_secret_value()`, for connecting, returns it whole."""

    __slots__ = ("_url",)

    def __init__(self, url: str):
        self._url = url.strip()

    def get_secret_value(self) -> str:
        return self._url

    @property
    def password(self) -> str | None:
        """For the log's scrubber: the password, if the URL carries one."""
        try:
            return urlsplit(self._url).password
        except ValueError:
            return None

    def __str__(self) -> str:
        from engine.memory.url import safe_url

        return safe_url(self._url)

    def __repr__(self) -> str:
        return f"PostgresURL({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PostgresURL) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def only_instances(v: Any) -> "PostgresURL":
            if not isinstance(v, PostgresURL):
                raise ValueError("not a PostgreSQL URL")
            return v

        return core_schema.no_info_plain_validator_function(
            only_instances, serialization=core_schema.plain_serializer_function_ser_schema(str))


def comma_list(v: Any) -> Any:
    """Environment variables give "U1,U2"; YAML gives a list. Accept both."""
    if isinstance(v, str):
        return [item.strip() for item in v.split(",") if item.strip()]
    if isinstance(v, list):  # YAML: `discord_admin_roles: [1234, Moderators]` has numbers too
        return [str(item).strip() for item in v if str(item).strip()]
    return v


def _numbers(v: Any, valid: Callable[[int], bool], problem: str) -> Any:
    """Numbers given as "1,2" (environment) or [1, 2] (YAML), each kept once, in order; anything
    else stops start-up with `problem` (`{!r}`: what was given)."""
    items = comma_list(v)
    if not isinstance(items, list):
        return v
    numbers: list[int] = []
    for item in items:
        text = str(item).strip()
        if not text.isascii() or not text.isdecimal() or not valid(int(text)):
            raise ValueError(problem.format(text[:40]))
        if int(text) not in numbers:  # the same server twice would only be synced twice, a shard run twice
            numbers.append(int(text))
    return numbers


def guild_ids(v: Any) -> Any:
    """Server ids are numbers (snowflakes); a name or a pasted URL here would only show up as
    commands that never appear, so it stops start-up with what to copy instead."""
    return _numbers(v, lambda n: 0 < n < 2**64,
                    "{!r} is not a server id: give numbers separated by commas (Discord: User Settings → "
                    "Advanced → Developer Mode, then right-click the server → Copy Server ID)")


def shard_ids(v: Any) -> Any:
    """Shard numbers, counted from 0: "0,1" (environment) or [0, 1] (YAML)."""
    return _numbers(v, lambda n: True,
                    "{!r} is not a shard number: give numbers from 0 separated by commas, e.g. 0,1")


def db_location(v: Any) -> Any:
    """A file path or `sqlite:///path` (`sqlite:////abs/path`): SQLite. `postgresql://…` or
    `postgres://…`: PostgreSQL. Any other URL is a mistake to stop at, never a file to create
    with that name. The value is never echoed: a database URL may hold a password."""
    if isinstance(v, PostgresURL) or not isinstance(v, str):
        return v
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", v.strip())
    if m is None:
        return v
    scheme = m.group(1).lower()
    if scheme == "sqlite":
        path = v.strip()[m.end():]
        if not path.startswith("/") or path == "/":
            raise ValueError("write a SQLite URL as sqlite:///relative/file.db or sqlite:////absolute/file.db, or give the file's path")
        return path[1:]
    if scheme in ("postgres", "postgresql"):
        try:
            urlsplit(v.strip()).port  # noqa: B018 - a port that is not a number raises here
        except ValueError:
            raise ValueError("the port in this PostgreSQL URL is not a number: write "
                             "postgresql://user:password@host:5432/database") from None
        return PostgresURL(v)
    raise ValueError(f"the URL scheme {scheme[:20]!r} is not one Orchestra knows: give a SQLite file path "
                     "(or sqlite:///path), or a PostgreSQL URL (postgresql://user:password@host:5432/database)")


def discord_url(v: Any, *, gateway: bool) -> Any:
    """A typo here sends every call somewhere else: only an absolute http(s) (REST) or ws(s)
    (gateway) URL is accepted. Empty means Discord's own."""
    if not isinstance(v, str):
        return v
    url = v.strip()
    if not url:
        return None
    schemes = ("ws", "wss") if gateway else ("http", "https")
    try:
        parts = urlsplit(url)
        valid = parts.scheme.lower() in schemes and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:  # e.g. a port that is not a number
        valid = False
    if not valid:
        what = ("a ws:// or wss:// URL, e.g. wss://gateway.example.com/" if gateway
                else "an http:// or https:// URL, e.g. https://discord.example.com/api/v10")
        raise ValueError(f"must be {what}; unset it to use Discord's own")
    return url


def switch(v: Any) -> Any:
    """On/off in the words people use; anything else is named, with what was given."""
    if isinstance(v, str):
        word = v.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"must be true or false (got {v.strip()[:40]!r})")
    return v


def secret_text(v: Any, *, discord_token: bool = False) -> Any:
    """A pasted token often brings a space or a newline along; an empty one is no token.
    A Discord token copied from an `Authorization: Bot …` header loses its "Bot " (discord.py
    adds it again)."""
    if isinstance(v, str):
        v = v.strip()
        if discord_token and v[:4].lower() == "bot ":
            v = v[4:].strip()
        return v or None
    return v


def duration_or_off(v: Any) -> Any:
    """A duration like the others (`bot.job_settings.parse_duration`), or `0` (also `0s`, `off`):
    none at all, which turns the feature off."""
    from bot.job_settings import parse_duration

    if isinstance(v, (str, int)) and not isinstance(v, bool):
        if str(v).strip().lower() in ("0", "0s", "0m", "0h", "off"):
            return timedelta()
        return parse_duration(str(v))
    return v
