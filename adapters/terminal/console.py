"""Reading what the person types, and leaving their terminal as it was found.

Line editing and history come from GNU readline, through `input()`. Three details matter to a
person at the keyboard:

- The prompt's colour codes are wrapped in readline's non-printing markers (\\001 … \\002), so
  readline knows how wide the prompt really is; without them, editing a long line or recalling
  history leaves stray characters on the screen.
- A multi-line paste is one message. We switch the terminal to bracketed paste mode
  (ESC[?2004h) while the chat runs; the terminal then wraps a paste in ESC[200~ … ESC[201~ and
  readline (8.0+, which binds ESC[200~ to `bracketed-paste-begin`) inserts it into the line as
  one piece, newlines included, and returns it when Enter is pressed. CPython turns readline's
  own `enable-bracketed-paste` off (bpo-42819), so readline never asks the terminal for it itself.
  Without GNU readline (libedit, or none) the mode stays off: a cooked terminal would echo the
  markers as "^[[200~".
- Everything is put back on the way out, Ctrl-C and crashes included: bracketed paste off
  (ESC[?2004l) and the terminal's settings as they were (readline, interrupted in the middle of
  a line, would otherwise leave it without echo).
"""

from __future__ import annotations

import asyncio
import atexit
import queue
import re
import threading
from types import ModuleType
from typing import TextIO

PASTE_ON, PASTE_OFF = "\x1b[?2004h", "\x1b[?2004l"
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
_ESCAPES = re.compile(r"(\x1b\[[0-9;?]*[A-Za-z])")


def gnu_readline() -> ModuleType | None:
    """The `readline` module when it is GNU readline (not libedit's emulation), else None."""
    try:
        import readline
    except ImportError:
        return None
    if getattr(readline, "backend", "readline") != "readline" or "libedit" in (readline.__doc__ or ""):
        return None
    return readline


def mark_invisible(prompt: str) -> str:
    """`prompt` with every escape sequence between readline's \\001 and \\002 markers."""
    return _ESCAPES.sub("\x01\\1\x02", prompt)


class TerminalModes:
    """Bracketed paste on, and the terminal's settings saved; `restore()` puts both back.

    `restore` is idempotent and also registered with `atexit`, so any way out restores.
    """

    def __init__(self, stdin: TextIO, stdout: TextIO, *, paste: bool):
        self._stdin, self._stdout, self._paste = stdin, stdout, paste
        self._saved: list | None = None
        self._active = False

    def enter(self) -> None:
        try:
            import termios

            self._saved = termios.tcgetattr(self._stdin.fileno())
        except (ImportError, OSError, ValueError, AttributeError):
            self._saved = None
        self._active = True
        atexit.register(self.restore)
        if self._paste:
            self._emit(PASTE_ON)

    def restore(self) -> None:
        if not self._active:
            return
        self._active = False
        if self._paste:
            self._emit(PASTE_OFF)
        if self._saved is not None:
            try:
                import termios

                termios.tcsetattr(self._stdin.fileno(), termios.TCSANOW, self._saved)
            except (OSError, ValueError, AttributeError):
                pass
        atexit.unregister(self.restore)

    def _emit(self, code: str) -> None:
        try:
            self._stdout.write(code)
            self._stdout.flush()
        except (OSError, ValueError):
            pass


class LineReader:
    """Reads one line when asked, on a daemon thread: `await read(prompt)` → str, or None at EOF.

    The event loop never blocks on a read, and Ctrl-C is never stuck behind one. Interactive
    reads go through `input()` (readline when there is one); a pasted block comes back as one
    string with its newlines. Piped reads take one line each.
    """

    def __init__(self, stream: TextIO, *, interactive: bool):
        self._stream = stream
        self._interactive = interactive
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._eof = False
        self.readline = gnu_readline() if interactive else None

    def _loop(self) -> None:
        while True:
            loop, future, prompt = self._requests.get()
            try:
                line = self._read(prompt)
            except BaseException as e:  # noqa: BLE001 - hand every failure to the event loop
                loop.call_soon_threadsafe(_settle, future, None, e)
                continue
            loop.call_soon_threadsafe(_settle, future, line, None)

    def _read(self, prompt: str) -> str | None:
        if self._interactive:
            try:
                line = input(mark_invisible(prompt) if self.readline else prompt)
            except EOFError:
                return None
            return line.replace(PASTE_START, "").replace(PASTE_END, "")
        buffer = getattr(self._stream, "buffer", None)
        raw = buffer.readline() if buffer is not None else self._stream.readline()
        if not raw:
            return None
        line = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        return line.rstrip("\r\n")

    async def read(self, prompt: str = "") -> str | None:
        if self._eof:
            return None
        if self._thread is None:
            if self._interactive and self.readline is None:
                try:
                    import readline  # noqa: F401 - libedit still gives line editing and history
                except ImportError:
                    pass
            self._thread = threading.Thread(target=self._loop, name="terminal-stdin", daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._requests.put((loop, future, prompt))
        line = await future
        if line is None:
            self._eof = True
        return line


def _settle(future: asyncio.Future, line: str | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None and not isinstance(error, (EOFError, KeyboardInterrupt)):
        future.set_exception(error)
    else:
        future.set_result(line)
