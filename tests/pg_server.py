"""A real PostgreSQL server for the tests, started by the tests themselves.

One server per test process (pytest-xdist gives each worker its own), in a temporary directory,
listening on 127.0.0.1 on a free port, with fsync off (it is thrown away). Each test that asks
for `pg_url` gets a database of its own, so tests never see each other's rows.

initdb refuses to run as root; these machines run as root, so the server runs as the `postgres`
system user (the Debian package creates it) when we are root. `.ci/run` installs PostgreSQL when
it is missing, so in CI nothing here skips; on a laptop without PostgreSQL the tests that need it
skip and say how to install it.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL = "apt-get install postgresql (Debian/Ubuntu) or brew install postgresql@15 (macOS)"


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running server: `url(db)` is a connection URL for one of its databases."""

    directory: Path
    port: int
    user: str
    _as: list[str]
    _pg_ctl: str
    _names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        psql = _bin("psql") or "psql"
        done = subprocess.run(
            [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", self.user, "-d", database, "-c", sql],
            capture_output=True, text=True, timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        subprocess.run([*self._as, self._pg_ctl, "-D", str(self.directory / "data"), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_server(settings: str = "") -> PgServer:
    """initdb and start a throw-away server; raises RuntimeError (with the server's words) if it fails.
    `settings`: more `-c name=value` options (a benchmark loads pg_stat_statements this way)."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise FileNotFoundError(f"PostgreSQL is not installed: {INSTALL}")
    directory = Path(tempfile.mkdtemp(prefix="orchestra-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the server runs as the postgres system user
        shutil.chown(directory, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port, user = directory / "data", _free_port(), "orchestra"
    init = subprocess.run(
        [*run_as, initdb, "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
        capture_output=True, text=True, timeout=120,
    )
    if init.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
    options = (f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 " + settings).strip()
    started = subprocess.run(
        [*run_as, pg_ctl, "-D", str(data), "-l", str(directory / "server.log"), "-o", options, "-w", "-t", "60", "start"],
        capture_output=True, text=True, timeout=120,
    )
    if started.returncode != 0:
        log = (directory / "server.log").read_text(errors="replace") if (directory / "server.log").exists() else ""
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr.strip()} {log[-2000:]}")
    server = PgServer(directory=directory, port=port, user=user, _as=run_as, _pg_ctl=pg_ctl)
    deadline = time.monotonic() + 30
    while True:  # pg_ctl -w waits for the socket; make sure TCP answers too
        try:
            server.psql("SELECT 1")
            return server
        except RuntimeError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def pg_server():
    """The test process's PostgreSQL server (started on first use, stopped at the end)."""
    try:
        server = start_server()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database of the test process's server: its URL."""
    return pg_server.create_database()
