"""A chat with the personas in the terminal (the Hubot/Errbot "shell" adapter).

It translates only: a typed line becomes a `Task`, a `Reply` becomes printed text. Lines are
handled one at a time, and the next prompt appears when the engine has finished the last one,
so the conversation reads in order. Standard input may be a terminal or a pipe; it is read on a
daemon thread, so the event loop never blocks on it and Ctrl-C is never stuck behind a read.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import queue
import sys
import threading
import uuid
from typing import TYPE_CHECKING, TextIO

from adapters.terminal.outbox import PLATFORM, WORKSPACE, TerminalOutbox
from adapters.terminal.render import Style, color_enabled
from engine.models import PostedMessage, Reply, ReplyKind, Task, TaskKind

if TYPE_CHECKING:
    from engine.engine import Engine

HELP = """\
Talk to the personas:
  @sophia why did signups drop?     ask a persona (also "sophia, ..."), in a new thread
  any other text                    follows up in the current thread (or starts one)
  /investigate TEXT                 start an investigation (/investigate karen TEXT: Karen leads)
  /challenge  /plan  /close         send the current investigation to the critic, to planning, or close it
  /new                              leave the current thread; the next message starts a new one
  /personas [NAME]                  who is who
  /memory                           what this channel remembers
  /forget                           make this channel forget everything
  /help                             this text
  /quit                             leave (Ctrl-D works too)"""

ACTIONS = {"challenge": TaskKind.CHALLENGE, "plan": TaskKind.PLAN, "close": TaskKind.CLOSE}


def default_user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser() or "you"
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "you"


class LineReader:
    """Reads one line when asked, on a daemon thread: `await read(prompt)` → str, or None at EOF."""

    def __init__(self, stream: TextIO, *, interactive: bool):
        self._stream = stream
        self._interactive = interactive
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._eof = False

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
                return input(prompt)
            except EOFError:
                return None
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
            if self._interactive:
                try:
                    import readline  # noqa: F401 - line editing and history for input()
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


class TerminalShell:
    """The terminal platform: `outbox` for the engine, `run()` for the chat loop."""

    name = PLATFORM

    def __init__(
        self,
        engine: "Engine",
        *,
        channel: str = "terminal",
        user: str | None = None,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        color: bool | None = None,
    ):
        self.engine = engine
        self.channel = channel
        self.user = user or default_user()
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.style = Style(color_enabled(self.stdout) if color is None else color)
        self.session = uuid.uuid4().hex[:10]
        self._count = 0
        self.thread: str | None = None  # the thread the next plain line goes to
        self.outbox = TerminalOutbox(
            self.write, self.style, new_id=self.new_id, channel=channel, on_posted=self._follow
        )
        interactive = _isatty(self.stdin) and _isatty(self.stdout)
        self.reader = LineReader(self.stdin, interactive=interactive)
        self.interactive = interactive
        self._stopping = False

    @property
    def description(self) -> str:
        return f"terminal (channel #{self.channel}, you are {self.user}; /help for commands)"

    # --- output -------------------------------------------------------------------------------

    def write(self, text: str) -> None:
        try:
            self.stdout.write(text + "\n")
            self.stdout.flush()
        except (BrokenPipeError, ValueError):
            self._stopping = True  # the reader went away (`orchestra | head`)

    def new_id(self) -> str:
        """Unique across sessions: memory outlives this process, and ids key threads and posts."""
        self._count += 1
        return f"{self.session}.{self._count}"

    def _follow(self, reply: Reply, posted: PostedMessage) -> None:
        if reply.platform == PLATFORM and reply.channel == self.channel and posted.thread:
            if reply.kind == ReplyKind.ROOT or reply.thread == self.thread or self.thread is None:
                self.thread = posted.thread

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Read and handle lines until /quit or end of input, then let the engine finish."""
        while not self._stopping:
            line = await self.reader.read(self.style.bold("you › ") if self.interactive else "")
            if line is None:
                break
            if not self.interactive and line.strip():
                # piped input is not echoed by a terminal: show what is being answered
                shown = line.strip() if len(line.strip()) <= 200 else line.strip()[:200] + f"… ({len(line.strip()):,} characters)"
                self.write(self.style.bold("you › ") + shown)
            if not await self.handle(line):
                break
        await self.engine.wait_idle()
        if self.interactive:
            self.write("")

    async def stop(self) -> None:
        self._stopping = True

    async def handle(self, line: str) -> bool:
        """One line from the person. False: they asked to leave."""
        text = line.strip()
        if not text:
            return True
        if text.startswith("/") and not text.startswith("//"):
            command, _, rest = text[1:].partition(" ")
            return await self.command(command.lower(), rest.strip())
        personas = self.engine.personas
        named, _ = personas.split_addressee(text)
        if named is not None or personas.unknown_addressee(text):
            await self.ask(text, new_thread=True)  # a mention starts its own thread, as in Slack
        else:
            await self.ask(text, new_thread=self.thread is None)
        return True

    async def command(self, command: str, rest: str) -> bool:
        if command in ("quit", "exit", "q"):
            return False
        if command in ("help", "h", "?"):
            self.write(HELP)
        elif command == "investigate":
            await self.investigate(rest)
        elif command in ACTIONS:
            await self.act(ACTIONS[command])
        elif command == "new":
            self.thread = None
            self.write(self.style.dim("Left the thread: your next message starts a new one."))
        elif command == "personas":
            self.show_personas(rest.lstrip("@"))
        elif command == "memory":
            await self.show_memory()
        elif command == "forget":
            result = await self.engine.memory_forget(PLATFORM, WORKSPACE, self.channel)
            self.thread = None
            self.write(f"#{self.channel} forgot {result.threads} thread(s), {result.turns} turn(s) and {result.tasks} task(s).")
        else:
            known = "/investigate, /challenge, /plan, /close, /new, /personas, /memory, /forget, /help, /quit"
            self.write(f"I don't know /{command}. Commands: {known}. To ask a persona, type @sophia and your question.")
        return True

    # --- tasks --------------------------------------------------------------------------------

    def _task(self, kind: TaskKind, text: str, *, thread: str | None, persona: str | None = None) -> Task:
        message_id = self.new_id()
        return Task(
            platform=PLATFORM, workspace=WORKSPACE, channel=self.channel, user=self.user, text=text,
            kind=kind, thread=thread, persona=persona, message_id=message_id,
            event_id=f"{PLATFORM}:{message_id}",
        )

    async def ask(self, text: str, *, new_thread: bool) -> None:
        if new_thread:
            task = self._task(TaskKind.MESSAGE, text, thread=None)
            task = task.model_copy(update={"thread": task.message_id})  # like a Slack mention
            self.thread = task.thread
        else:
            task = self._task(TaskKind.MESSAGE, text, thread=self.thread)
        await self.engine.run(task)

    async def investigate(self, rest: str) -> None:
        first, _, after = rest.partition(" ")
        persona = self.engine.personas.get(first)
        text = after.strip() if persona else rest
        if not text:
            self.write("Usage: /investigate TEXT, or /investigate karen TEXT to choose who leads.")
            return
        await self.engine.run(self._task(TaskKind.INVESTIGATE, text, thread=None, persona=persona.name if persona else None))

    async def act(self, kind: TaskKind) -> None:
        if self.thread is None:
            self.write("There is no current thread. Start an investigation with /investigate TEXT.")
            return
        await self.engine.run(self._task(kind, "", thread=self.thread))

    # --- queries ------------------------------------------------------------------------------

    def show_personas(self, name: str) -> None:
        if not name:
            self.write(self.engine.personas_overview() + "\n" + self.style.dim("/personas NAME shows one in full."))
            return
        card = self.engine.persona_card(name)
        if card is None:
            self.write(f"I don't know a persona called “{name}”.\n{self.engine.personas_overview()}")
        else:
            self.write(card)

    async def show_memory(self) -> None:
        threads = await self.engine.memory_list(PLATFORM, WORKSPACE, self.channel)
        if not threads:
            self.write(f"#{self.channel} remembers nothing yet.")
            return
        self.write(f"#{self.channel} remembers {len(threads)} thread(s):")
        for t in threads:
            lead = f" · {t.lead}" if t.lead else ""
            self.write(f"  {t.id}  {t.kind.value} · {t.status.value} · {t.phase.value}{lead} · {t.turns} turn(s)  {t.title[:80]}")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
