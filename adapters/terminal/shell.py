"""A chat with the personas in the terminal (the Hubot/Errbot "shell" adapter).

It translates only: a typed line becomes a `Task`, a `Reply` becomes printed text. Messages are
handled one at a time, and the next prompt appears when the engine has finished the last one,
so the conversation reads in order and nothing is ever printed over a half-typed line: work
resumed at start-up finishes before the first prompt too. Standard input may be a terminal (a
multi-line paste is one message, see `console`) or a pipe (one message a line).

While the chat runs, log records meant for the terminal go to a file (`logfile`), and the
terminal's modes are restored on every way out.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
import uuid
from typing import TYPE_CHECKING, TextIO

from adapters.terminal.console import LineReader, TerminalModes
from adapters.terminal.logfile import LogToFile, log_path_beside, would_redirect
from adapters.terminal.outbox import PLATFORM, WORKSPACE, TerminalOutbox
from adapters.terminal.render import Style, color_enabled, terminal_width, wrap_line, wrap_text
from engine.memory.records import ThreadKind, ThreadRecord, ThreadStatus
from engine.models import PostedMessage, Reply, ReplyKind, Task, TaskKind

if TYPE_CHECKING:
    from engine.engine import Engine

HELP = """\
Talk to the personas:
  @sophia why did signups drop?     ask a persona (also "sophia, ..."), in a new thread
  any other text                    follows up in the current thread (or starts one)
  /investigate TEXT                 start an investigation (/investigate karen TEXT: Karen leads)
  /challenge  /plan  /close         send the current investigation to the critic, to planning, or close it
  /crew [DOMAIN COMPLEXITY:] TEXT   a persona assembles a crew for bigger work (/crew sales high: TEXT)
  /crew plan                        hand the current investigation's plan to a crew
  /new                              leave the current thread; the next message starts a new one
  /personas [NAME]                  who is who
  /persona set NAME field=value     change a persona (also create, archive, history; /persona help)
  /memory                           what this channel remembers
  /forget                           make this channel forget everything (asks first)
  /help                             this text
  /quit                             leave (Ctrl-D works too)"""

_TERM = re.compile(r"^(\s+\S.*\s{2,})(?=\S)")  # "  /new      " before a help line's description



def help_text(width: int | None) -> str:
    """HELP wrapped to `width`, each description continuing under itself, not under its command."""
    out = []
    for line in HELP.splitlines():
        term = _TERM.match(line)
        column = len(term.group(1)) if term else 0
        hanging = " " * (column if width is None or width - column >= 24 else 6)  # narrow: less indent
        out += wrap_line(line, width, "", hanging if term else None)
    return "\n".join(out)


ACTIONS = {"challenge": TaskKind.CHALLENGE, "plan": TaskKind.PLAN, "close": TaskKind.CLOSE}


def default_user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser() or "you"
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "you"


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
        persona_admin=None,
    ):
        self.engine = engine
        self.persona_admin = persona_admin  # engine.personas.admin.PersonaAdmin: the local operator is admin
        self.channel = channel
        self.user = user or default_user()
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.style = Style(color_enabled(self.stdout) if color is None else color)
        self.session = uuid.uuid4().hex[:10]
        self._count = 0
        self.thread: str | None = None  # the thread the next plain line goes to
        self.closed_thread: str | None = None  # the investigation just closed: /close again says so
        self.outbox = TerminalOutbox(
            self.write, self.style, new_id=self.new_id, channel=channel, on_posted=self._follow, width=self.width
        )
        interactive = _isatty(self.stdin) and _isatty(self.stdout)
        self.reader = LineReader(self.stdin, interactive=interactive)
        self.interactive = interactive
        self.modes = TerminalModes(self.stdin, self.stdout, paste=self.reader.readline is not None) if interactive else None
        path = log_path_beside(getattr(getattr(engine, "memory", None), "path", None))
        self.log = LogToFile(path if would_redirect() else None)
        self._stopping = False

    @property
    def description(self) -> str:
        log = f"; log in {self.log.path}" if self.log.path else ""
        return f"terminal (channel #{self.channel}, you are {self.user}; /help for commands{log})"

    # --- output -------------------------------------------------------------------------------

    def width(self) -> int | None:
        """Columns to wrap to (see `render.terminal_width`): asked on every post, to follow resizes."""
        return terminal_width(self.stdout)

    def say(self, text: str) -> None:
        """Write the shell's own text, wrapped like the personas' posts."""
        self.write(wrap_text(text, self.width()))

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
        if isinstance(reply.content, dict) and "digest" in reply.content:
            return  # a digest is a channel post: the next line must not go to it as a thread
        if reply.platform == PLATFORM and reply.channel == self.channel and posted.thread:
            if reply.kind == ReplyKind.ROOT or reply.thread == self.thread or self.thread is None:
                self.thread = posted.thread

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Read and handle messages until /quit or end of input, then let the engine finish.

        Work resumed at start-up (`engine.start()` ran just before) is printed before the
        first prompt, so it never lands on a line the person is typing.
        """
        self.log.start()
        if self.modes is not None:
            self.modes.enter()
        try:
            await self.engine.wait_idle()
            while not self._stopping:
                line = await self.read(self.style.bold("you › "))
                if line is None:
                    break
                if not await self.handle(line):
                    break
            await self.engine.wait_idle()
            if self.interactive:
                self.write("")
        finally:
            self._restore()

    async def read(self, prompt: str, *, question: bool = False) -> str | None:
        """The next message (or the answer to a `question`). Piped input is not echoed by a
        terminal: show what is being answered."""
        line = await self.reader.read(prompt if self.interactive else "")
        if line is not None and not self.interactive and (line.strip() or question):
            text = line.strip()
            shown = text if len(text) <= 200 else text[:200] + f"… ({len(text):,} characters)"
            self.write(prompt + shown)
        return line

    def _restore(self) -> None:
        if self.modes is not None:
            self.modes.restore()
        self.log.stop()

    async def stop(self) -> None:
        self._stopping = True
        self._restore()

    async def handle(self, line: str) -> bool:
        """One line from the person. False: they asked to leave."""
        text = line.strip()
        if not text:
            return True
        if text.startswith("/") and not text.startswith("//"):
            command, *rest = re.split(r"\s+", text[1:], maxsplit=1)  # a pasted block may follow a newline
            return await self.command(command.lower(), rest[0].strip() if rest else "")
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
            self.write(help_text(self.width()))
            if self.log.path:
                self.say(self.style.dim(f"Warnings and errors go to {self.log.path} while the chat runs."))
        elif command == "investigate":
            await self.investigate(rest)
        elif command in ACTIONS:
            await self.act(ACTIONS[command])
        elif command == "crew":
            await self.crew(rest)
        elif command == "new":
            self.thread = self.closed_thread = None
            self.write(self.style.dim("Left the thread: your next message starts a new one."))
        elif command == "personas":
            self.show_personas(rest.lstrip("@"))
        elif command == "persona":
            await self.admin_persona(rest)
        elif command == "memory":
            await self.show_memory()
        elif command == "forget":
            await self.forget()
        else:
            known = "/investigate, /challenge, /plan, /close, /crew, /new, /personas, /persona, /memory, /forget, /help, /quit"
            self.say(f"I don't know /{command}. Commands: {known}. To ask a persona, type @sophia and your question.")
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
        self._after(await self.engine.run(task))

    async def investigate(self, rest: str) -> None:
        first, _, after = rest.partition(" ")
        persona = self.engine.personas.get(first)
        text = after.strip() if persona else rest
        if not text:
            self.write("Usage: /investigate TEXT, or /investigate karen TEXT to choose who leads.")
            return
        self._after(await self.engine.run(self._task(TaskKind.INVESTIGATE, text, thread=None, persona=persona.name if persona else None)))

    async def act(self, kind: TaskKind) -> None:
        thread = self.thread or self.closed_thread  # /close twice: the engine says it is closed already
        if thread is None:
            self.write("There is no current thread. Start an investigation with /investigate TEXT.")
            return
        self._after(await self.engine.run(self._task(kind, "", thread=thread)))

    async def crew(self, rest: str) -> None:
        """`/crew TEXT` starts a crew in a new thread; `/crew plan` hands the current
        investigation's plan to one (the engine finds the plan in the thread)."""
        from engine.crews.request import CrewRequestError, parse_crew_text

        if rest.strip().lower() == "plan":
            thread = self.thread or self.closed_thread
            if thread is None:
                self.write("There is no current investigation. Start one with /investigate TEXT, then /crew plan.")
                return
            self._after(await self.engine.run(self._task(TaskKind.CREW, "", thread=thread)))
            return
        try:
            request = parse_crew_text(rest)
        except CrewRequestError as e:
            self.say(str(e))
            return
        if not request.text:
            self.write("Usage: /crew TEXT, e.g. /crew sales high: grow the Q3 pipeline (or /crew plan in an investigation).")
            return
        task = self._task(TaskKind.CREW, request.text, thread=None).model_copy(update={"options": request.options()})
        self._after(await self.engine.run(task))

    def _after(self, rec: ThreadRecord | None) -> None:
        """Leave an investigation once it is closed: plain text then starts a new conversation."""
        if rec is None or rec.kind != ThreadKind.INVESTIGATION or rec.status != ThreadStatus.CLOSED:
            return
        if rec.thread == self.thread:
            self.thread = None
        if rec.thread != self.closed_thread:
            self.closed_thread = rec.thread
            self.say(self.style.dim(
                f"Investigation {rec.id} is closed: your next message starts a new conversation "
                "(/investigate TEXT starts a new investigation)."
            ))

    async def forget(self) -> None:
        """Ask first, as `orchestra memory forget` does: anything but y or yes keeps the memory."""
        threads = await self.engine.memory_list(PLATFORM, WORKSPACE, self.channel)
        if not threads:
            self.write(f"#{self.channel} remembers nothing yet.")
            return
        answer = await self.read(
            f"Forget everything #{self.channel} remembers ({len(threads)} thread(s))? This cannot be undone. [y/N] ",
            question=True,
        )
        if (answer or "").strip().lower() not in ("y", "yes"):
            self.write("Nothing forgotten.")
            return
        result = await self.engine.memory_forget(PLATFORM, WORKSPACE, self.channel)
        self.thread = self.closed_thread = None
        self.write(f"#{self.channel} forgot {result.threads} thread(s), {result.turns} turn(s) and {result.tasks} task(s).")

    async def admin_persona(self, rest: str) -> None:
        """`/persona set sophia humor=0.3`: whoever runs the terminal is the local operator."""
        from engine.personas.edit import PersonaEditError

        if self.persona_admin is None:
            self.say("Persona admin is not available here; use `orchestra personas set ...`.")
            return
        try:
            self.say(await self.persona_admin.run(rest, actor=f"{PLATFORM}:{self.user}"))
        except PersonaEditError as e:
            self.say(str(e))

    # --- queries ------------------------------------------------------------------------------

    def show_personas(self, name: str) -> None:
        if not name:
            self.say(self.engine.personas_overview() + "\n" + self.style.dim("/personas NAME shows one in full."))
            return
        card = self.engine.persona_card(name)
        if card is None:
            self.say(f"I don't know a persona called “{name}”.\n{self.engine.personas_overview()}")
        else:
            self.say(card)

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
