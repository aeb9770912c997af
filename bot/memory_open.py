"""Opening the memory ORCHESTRA_DB names, for the composition root and the commands: a SQLite
file or a PostgreSQL database, with every way that can fail turned into one message a person can
act on (the setting's name, what to check, exit code 2) instead of a driver's exception.

The PostgreSQL URL may carry a password: no message here contains it (the location shown is
`engine.memory.url.safe_url`), and the driver's own words go to the debug log only.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bot.setting_values import PostgresURL
from bot.settings import SettingsError
from engine.memory.url import safe_url

log = logging.getLogger(__name__)

#: What to install when ORCHESTRA_DB names PostgreSQL and its driver is missing.
POSTGRES_INSTALL = "pip install 'orchestra-personas[postgres]'"
#: Longest wait for a PostgreSQL server that does not answer (a firewall that drops packets).
CONNECT_TIMEOUT = 30.0


def backend_name(db: Path | PostgresURL) -> str:
    return "PostgreSQL" if isinstance(db, PostgresURL) else "SQLite"


def describe(db: Path | PostgresURL) -> str:
    """Where the memory lives, safe to print: `/path/orchestra.db (SQLite)`, or the URL without
    its password `(PostgreSQL)`."""
    return f"{db} ({backend_name(db)})"


async def open_configured_memory(db: Path | PostgresURL, *, setting: str = "ORCHESTRA_DB") -> Any:
    """The memory at `db` (migrated to this code's schema), or `SettingsError` naming `setting`."""
    if isinstance(db, PostgresURL):
        return await open_postgres(db.get_secret_value(), setting=setting)
    return await open_sqlite(Path(db), setting=setting)


async def open_sqlite(path: Path, *, setting: str = "ORCHESTRA_DB") -> Any:
    from engine.memory.connection import MemoryVersionError
    from engine.memory.open import open_memory

    if path.is_dir():
        raise SettingsError([f"{setting}={path} is a directory: name a file, e.g. {path / 'orchestra.db'}"])
    try:
        return await open_memory(path)
    except OSError as e:
        raise SettingsError([f"{setting}: cannot open {path}: {e.strerror or e}"]) from None
    except MemoryVersionError as e:  # not a mistake in the file: the newer Orchestra can use it
        raise SettingsError([newer_message(setting, str(path), e)]) from None
    except sqlite3.DatabaseError as e:  # not a database, unreadable, locked by another program
        log.debug("cannot open %s", path, exc_info=True)
        raise SettingsError([f"{setting}: cannot use {path} as the memory ({e}): "
                             "name another file, or move this one away"]) from None


def newer_message(setting: str, where: str, e: Any) -> str:
    return (f"{setting}: {where} was written by a newer Orchestra (memory version {e.version}; this one "
            f"knows {e.known}): upgrade Orchestra, or point {setting} at another memory")


async def open_postgres(url: str, *, setting: str = "ORCHESTRA_DB") -> Any:
    """`PostgresMemory` at `url` (the schema created or migrated), or `SettingsError`."""
    require_asyncpg(setting)
    from engine.memory.connection import MemoryVersionError
    from engine.memory.open import open_memory

    try:
        return await asyncio.wait_for(open_memory(url), CONNECT_TIMEOUT)
    except MemoryVersionError as e:
        raise SettingsError([newer_message(setting, safe_url(url), e)]) from None
    except Exception as e:  # noqa: BLE001 - every driver failure becomes one message, no URL
        raise SettingsError([postgres_problem(setting, url, e)]) from None


def require_asyncpg(setting: str = "ORCHESTRA_DB") -> None:
    """PostgreSQL needs asyncpg (the `postgres` extra): say how to install it, not an ImportError."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        raise SettingsError([f"{setting} names a PostgreSQL database, and its driver (asyncpg) is not "
                             f"installed: {POSTGRES_INSTALL}"]) from None


def postgres_problem(setting: str, url: str, e: BaseException) -> str:
    """What went wrong reaching or opening the database, and what to check; never the password,
    never the driver's class name (that goes to the debug log)."""
    import asyncpg

    log.debug("cannot open the PostgreSQL memory at %s: %s", safe_url(url), _without_password(repr(e), url))
    where = safe_url(url)
    try:
        parts = urlsplit(url.strip())
        user = unquote(parts.username or "") or "(the default user)"
        database = unquote(parts.path.lstrip("/")) or user
        server = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    except ValueError:
        user, database, server = "(unreadable)", "(unreadable)", "(unreadable)"
    if isinstance(e, asyncpg.InvalidPasswordError):
        return (f"{setting}: PostgreSQL refused the password of user {user} at {where}: "
                "check the user and password in the URL (or PGPASSWORD / ~/.pgpass)")
    if isinstance(e, asyncpg.InvalidAuthorizationSpecificationError):
        return (f"{setting}: PostgreSQL refused user {user} at {where} (no such role, or pg_hba.conf "
                "does not let it connect from here): check the user in the URL and the server's pg_hba.conf")
    if isinstance(e, asyncpg.InvalidCatalogNameError):
        return (f"{setting}: the PostgreSQL server at {server} has no database {database!r}: create it "
                f"(createdb {database}) or fix the database name in the URL ({where})")
    if isinstance(e, asyncpg.InsufficientPrivilegeError):
        return (f"{setting}: user {user} may not create the memory's tables in {where}: make it the "
                "database's owner, or grant it CREATE on the schema")
    if isinstance(e, asyncpg.TooManyConnectionsError):
        return (f"{setting}: the PostgreSQL server at {server} has no connection slot left: raise its "
                "max_connections, or run fewer replicas")
    if isinstance(e, (OSError, asyncio.TimeoutError, asyncpg.CannotConnectNowError,
                      asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError)):
        why = "it did not answer in time" if isinstance(e, asyncio.TimeoutError) else "the connection failed"
        return (f"{setting}: cannot reach the PostgreSQL server at {server} ({why}): check that it "
                f"is running and that the host and port in {where} are right")
    # not one of the usual mistakes: the server's own words (never the URL) go to the log
    log.warning("cannot open the PostgreSQL memory at %s: %s", where, _without_password(str(e), url))
    if isinstance(e, asyncpg.PostgresError):
        return (f"{setting}: PostgreSQL refused to open the memory at {where} (SQLSTATE "
                f"{getattr(e, 'sqlstate', '?')}): see the log above and the server's log")
    return (f"{setting}: cannot open the PostgreSQL memory at {where}: check the URL "
            "(postgresql://user:password@host:5432/database) and that the server is running")


def _without_password(text: str, url: str) -> str:
    """A driver's message with the URL's password (should it quote it) and the URL taken out."""
    try:
        password = urlsplit(url.strip()).password
    except ValueError:
        password = None
    text = text.replace(url, safe_url(url))
    return text.replace(password, "[redacted]") if password else text
