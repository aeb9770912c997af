"""Where the memory lives: a SQLite file, or a PostgreSQL URL (which may carry a password)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_POSTGRES = re.compile(r"^postgres(?:ql)?(?:\+[a-z0-9]+)?://", re.IGNORECASE)


def is_postgres_url(db: str | Path) -> bool:
    """True for `postgresql://…` and `postgres://…`: the memory is a PostgreSQL database."""
    return isinstance(db, str) and bool(_POSTGRES.match(db.strip()))


def safe_url(url: str) -> str:
    """The URL without its password (and without a query that could carry one): for messages
    and logs. Never raises: a URL it cannot read becomes a placeholder, not an echo."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal keeps its brackets
            host = f"[{host}]"
        netloc = f"{parts.username}@{host}" if parts.username else host
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "postgresql://(unreadable URL)"
