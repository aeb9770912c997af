"""uvicorn inside the bot's own event loop (never a second process): one ASGI app, one port.

The socket is bound here, before uvicorn starts, so a port in use or a privileged port is one
clear `ListenError` at start-up, and port 0 gives the bound port back. uvicorn's own signal
handlers are left out: the bot's loop already decides what SIGTERM and Ctrl-C mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from typing import Any, Iterator

import uvicorn

log = logging.getLogger(__name__)

#: a deep accept backlog: a burst of Slack events must not wait for a SYN retransmit (1 s); 1,000
#: new connections at once would fill 1024 while the loop is busy with the first ones (Linux caps
#: it at net.core.somaxconn, 4096 by default)
BACKLOG = 4096


class ListenError(OSError):
    """The port cannot be listened on. The message is safe to print and names `--port`."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the bot's loop owns the signals
        yield


class HttpServer:
    """`port = await start()`, serve in the background, `await stop()` (connections get `grace`
    seconds, e.g. an open event stream, then are closed)."""

    def __init__(self, app: Any, *, host: str = "0.0.0.0", port: int = 3000, grace: float = 3.0):
        self.app, self.host, self.port, self.grace = app, host, port, grace
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(BACKLOG)
        except OSError as e:
            sock.close()
            why = {errno.EADDRINUSE: "is already in use", errno.EACCES: "needs privileges"}.get(
                e.errno or 0, f"cannot be listened on ({e.strerror or e.__class__.__name__})"
            )
            raise ListenError(e.errno or 0, f"port {self.port} {why}: choose another with --port") from None
        sock.setblocking(False)
        return sock

    async def start(self) -> int:
        sock = self._bind()
        bound = int(sock.getsockname()[1])
        config = uvicorn.Config(
            # http "auto": httptools (the `api` extra installs it), else h11
            self.app, log_config=None, access_log=False, lifespan="off", backlog=BACKLOG, http="auto",
            timeout_graceful_shutdown=self.grace, server_header=False,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=f"http-{bound}")
        while not self._server.started:
            if self._task.done():  # failed on the way up: say why
                sock.close()
                self._task.result()
                raise ListenError(0, f"port {bound} cannot be listened on: choose another with --port")
            await asyncio.sleep(0.01)
        self.port = bound
        log.info("HTTP: listening on %s:%s", self.host, bound)
        return bound

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self.grace + 2)
        except asyncio.TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._server = self._task = None
