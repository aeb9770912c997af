"""Keep log records out of the chat: while it runs, what would be logged to the terminal goes to
a file beside the memory database instead (`orchestra.log` next to `orchestra.db`).

A warning printed between two persona posts reads like part of the conversation and scrolls
what the person was reading away. Handlers that write elsewhere (a pipe, a file) are left alone:
`orchestra 2>errors.txt` still gets its log there. The formatter is kept, so the secrets
scrubbing `bot.bootstrap` installs applies to the file too.
"""

from __future__ import annotations

import logging
from pathlib import Path

LOG_NAME = "orchestra.log"


def log_path_beside(db_path: object) -> Path | None:
    """`orchestra.log` in the database's folder; None for an in-memory or unknown database."""
    if not isinstance(db_path, (str, Path)) or str(db_path) in ("", ":memory:"):
        return None
    return Path(db_path).expanduser().resolve().parent / LOG_NAME


def _to_terminal(handler: logging.Handler) -> bool:
    if isinstance(handler, logging.FileHandler) or not isinstance(handler, logging.StreamHandler):
        return False
    try:
        return handler.stream.isatty()
    except (AttributeError, ValueError):
        return False


def would_redirect(logger: logging.Logger | None = None) -> bool:
    """Whether any handler of the root logger writes to a terminal now."""
    return any(_to_terminal(h) for h in (logger or logging.getLogger()).handlers)


class LogToFile:
    """`start()` swaps the root logger's terminal handlers for one file handler; `stop()` undoes it."""

    def __init__(self, path: Path | None, logger: logging.Logger | None = None):
        self.path = path
        self._logger = logger or logging.getLogger()
        self._swapped: list[logging.Handler] = []
        self._file: logging.FileHandler | None = None

    def start(self) -> bool:
        """True when records now go to `path`."""
        terminal = [h for h in self._logger.handlers if _to_terminal(h)]
        if self.path is None or not terminal or self._file is not None:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            file = logging.FileHandler(self.path, encoding="utf-8")
        except OSError:
            return False  # an unwritable folder: better interleaved than lost
        file.setFormatter(terminal[0].formatter)
        file.setLevel(min(h.level for h in terminal))
        for f in terminal[0].filters:
            file.addFilter(f)
        for h in terminal:
            self._logger.removeHandler(h)
        self._logger.addHandler(file)
        self._swapped, self._file = terminal, file
        return True

    def stop(self) -> None:
        if self._file is None:
            return
        self._logger.removeHandler(self._file)
        self._file.close()
        for h in self._swapped:
            self._logger.addHandler(h)
        self._swapped, self._file = [], None
