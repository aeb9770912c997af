"""The terminal adapter as a person uses it: a real `orchestra` process, lines in, text out."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte
import wcwidth

from engine.memory.store import SQLiteMemory
from engine.models import Task, TaskKind
from tests.test_cli import clean_env, orchestra

ANSI = "\x1b["


def chat(tmp_path: Path, *lines: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Type `lines` into `orchestra` (stdin is a pipe), then end the input (Ctrl-D)."""
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], cwd=tmp_path, env=env or clean_env(tmp_path),
        input="".join(line + "\n" for line in lines), capture_output=True, text=True, encoding="utf-8", timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def export(tmp_path: Path, channel: str = "terminal") -> dict:
    result = orchestra(tmp_path, "memory", "export", "--channel", channel)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_banner_says_offline_and_how_to_configure_a_model_then_eof_exits_0(tmp_path):
    result = chat(tmp_path)
    assert result.returncode == 0
    out = result.stdout
    assert "offline rehearsal" in out
    for hint in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "Ollama"):
        assert hint in out
    assert str(tmp_path / "memory.db") in out
    assert "terminal (channel #terminal" in out
    assert ANSI not in out  # a pipe gets no colour


def test_banner_names_the_model_and_never_a_secret(tmp_path):
    secret = "sk-proj-THISMUSTNOTBEPRINTED0123456789"
    env = clean_env(
        tmp_path, OPENAI_API_KEY=secret, OPENAI_BASE_URL="http://user:hunter2@127.0.0.1:9/v1?key=abc",
        ORCHESTRA_OPENAI_MODEL="llama3.2", ORCHESTRA_LOG_LEVEL="DEBUG",
    )
    result = chat(tmp_path, "/personas", env=env)
    assert result.returncode == 0
    assert "OpenAI-compatible server, model llama3.2 at http://127.0.0.1:9/v1" in result.stdout
    everything = result.stdout + result.stderr
    for leaked in (secret, "hunter2", "key=abc"):
        assert leaked not in everything


def test_a_persona_answers_in_a_new_thread(tmp_path):
    result = chat(tmp_path, "@sophia why did signups drop?")
    assert result.returncode == 0
    out = result.stdout
    assert "Sophia is thinking…" in out
    assert "🔬 Sophia" in out
    assert "Offline rehearsal" in out
    assert "why did signups drop?" in out
    threads = export(tmp_path)["threads"]
    assert [(t["kind"], t["lead"]) for t in threads] == [("conversation", "sophia")]


def test_an_investigation_runs_its_cast_and_a_follow_up_stays_in_its_thread(tmp_path):
    result = chat(
        tmp_path,
        "/investigate intermittent 401s on checkout",
        "the 401s started right after the Tuesday deploy of the auth service",
    )
    assert result.returncode == 0
    out = result.stdout
    assert "Investigation terminal-1: intermittent 401s" in out  # the root post, its readable id
    for shown in ("Sophia · researcher", "Karen · critic", "Cherry · planner"):
        assert shown in out
    threads = export(tmp_path)["threads"]
    assert len(threads) == 1, "the follow-up joined the investigation instead of starting a thread"
    inv = threads[0]
    assert inv["kind"] == "investigation"
    humans = [t["text"] for t in inv["turns"] if t["role"] == "human"]
    assert humans == ["intermittent 401s on checkout", "the 401s started right after the Tuesday deploy of the auth service"]
    modes = [t["mode"] for t in inv["turns"] if t["role"] == "persona"]
    assert {"researcher", "critic", "planner"} <= set(modes)


def test_investigate_with_a_lead_and_the_investigation_commands(tmp_path):
    result = chat(
        tmp_path,
        "/investigate karen why did enterprise sales stall this quarter",
        "/challenge",
        "/plan",
        "/close",
    )
    assert result.returncode == 0
    out = result.stdout
    assert "Lead: Karen" in out
    # Karen leads and researches, so she never challenges her own finding: Sophia does
    assert "Sophia · critic" in out and "Karen · critic" not in out and "Cherry · planner" in out
    assert "closed by" in out
    (inv,) = export(tmp_path)["threads"]
    assert inv["lead"] == "karen" and inv["status"] == "closed"


def test_commands_and_odd_input(tmp_path):
    long_line = "x" * 40_000
    result = chat(
        tmp_path,
        "/help",
        "/personas",
        "/personas sophia",
        "/personas bob",
        "",
        "   ",
        "@bob hi",
        "/challenge",  # the current thread is a conversation, not an investigation
        "/new",
        "/plan",  # no thread at all now
        "/frobnicate",
        "/investigate",
        "sophia, 日本語のテキスト 🎉 with émoji ✨ — does unicode survive?",
        long_line,
        "/memory",
    )
    assert result.returncode == 0
    out = result.stdout
    assert "/investigate TEXT" in out  # help
    assert "Research and data lead" in out and "Traits:" in out  # overview and card
    assert "I don't know a persona called “bob”" in out
    assert "I can't find an investigation in this thread" in out
    assert "There is no current thread" in out
    assert "I don't know /frobnicate" in out
    assert "Usage: /investigate" in out
    assert "日本語のテキスト 🎉" in out
    assert "40,000 characters; I read the first" in out  # the engine says what it read
    assert "#terminal remembers" in out
    assert long_line not in out


def test_plain_text_starts_a_conversation_routed_by_domain_then_follows_it(tmp_path):
    result = chat(tmp_path, "our sales pipeline for the marketing project looks thin", "what should we do first?", "/memory")
    assert result.returncode == 0
    (conv,) = export(tmp_path)["threads"]
    assert conv["kind"] == "conversation" and conv["lead"] == "karen"
    assert [t["text"] for t in conv["turns"] if t["role"] == "human"] == [
        "our sales pipeline for the marketing project looks thin", "what should we do first?",
    ]


def test_channels_and_forget(tmp_path):
    chat(tmp_path, "@cherry what is our roadmap?", args=("--channel", "planning"))
    assert len(export(tmp_path, "planning")["threads"]) == 1
    assert export(tmp_path)["threads"] == []
    result = chat(tmp_path, "/forget", "y", "/memory", args=("--channel", "planning"))
    assert "forgot 1 thread(s)" in result.stdout and "remembers nothing yet" in result.stdout
    assert export(tmp_path, "planning")["threads"] == []


def test_forget_asks_first_and_anything_but_yes_keeps_the_memory(tmp_path):
    chat(tmp_path, "@cherry what is our roadmap?")
    result = chat(tmp_path, "/forget", "/memory", "/forget", "no", "/forget", "", "/memory")
    out = result.stdout
    assert out.count("Forget everything #terminal remembers (1 thread(s))? This cannot be undone. [y/N]") == 3
    assert out.count("Nothing forgotten.") == 3  # "/memory" was taken as the answer, not as a command
    assert "#terminal forgot" not in out
    assert len(export(tmp_path)["threads"]) == 1
    result = chat(tmp_path, "/forget", "yes", "/memory")
    assert "#terminal forgot 1 thread(s)" in result.stdout and "remembers nothing yet" in result.stdout


def test_quit_stops_reading(tmp_path):
    result = chat(tmp_path, "/quit", "@sophia this is never read")
    assert result.returncode == 0
    assert "never read" not in result.stdout


def test_persona_names_are_coloured_with_force_color(tmp_path):
    result = chat(tmp_path, "@sophia hello", "@karen hello", env=clean_env(tmp_path, FORCE_COLOR="1"))
    assert "\x1b[1;36mSophia\x1b[0m" in result.stdout  # cyan
    assert "\x1b[1;35mKaren\x1b[0m" in result.stdout  # magenta


def test_no_color_wins_over_a_terminal_but_not_over_force_color(tmp_path):
    plain = chat(tmp_path, "@sophia hello", env=clean_env(tmp_path, NO_COLOR="1"))
    assert ANSI not in plain.stdout
    both = chat(tmp_path, "@sophia hello", env=clean_env(tmp_path, NO_COLOR="1", FORCE_COLOR="1"))
    assert "\x1b[1;36mSophia" in both.stdout


def _read_until(fd: int, needle: bytes, timeout: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {needle!r}; got {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_in_a_real_terminal_names_are_coloured_and_ctrl_d_exits(tmp_path):
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli"], cwd=tmp_path, env=clean_env(tmp_path, TERM="xterm"),
        stdin=slave, stdout=slave, stderr=subprocess.PIPE,
    )
    os.close(slave)
    try:
        _read_until(master, "you › ".encode())
        os.write(master, "@sophia hello there\n".encode())
        out = _read_until(master, "you › ".encode())
        assert b"\x1b[1;36mSophia\x1b[0m" in out
        os.write(master, b"\x04")  # Ctrl-D
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"Traceback" not in proc.stderr.read()


def test_ctrl_c_exits_cleanly(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli"], cwd=tmp_path, env=clean_env(tmp_path),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        _read_until(proc.stdout.fileno(), b"Platforms:")
        time.sleep(0.3)  # the shell is waiting for a line
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read().decode()
    assert code == 130
    assert "Traceback" not in stderr
    assert "bye" in stderr


# --- long text, closed investigations, hints -----------------------------------------------------

def _columns(line: str) -> int:
    return wcwidth.wcswidth(line)


def test_text_wraps_to_columns_keeping_the_indent_and_whole_urls(tmp_path):
    url = "https://grafana.example.com/d/checkout-errors/overview?orgId=1&from=now-7d&var-region=eu-west-1"
    question = (
        f"@sophia why did signups drop 📉 after the checkout redesign 🎉🎉🎉 shipped? The dashboard {url} "
        "shows 日本語のテキスト errors rising on mobile while desktop stayed flat for the whole week"
    )
    wrapped = chat(tmp_path, question, env=clean_env(tmp_path, COLUMNS="48")).stdout
    answer = wrapped[wrapped.index("🔬 Sophia\n"):].split("\n\n")[0].splitlines()[1:]
    assert len(answer) > 5
    for line in answer:
        assert line.startswith("   "), line  # the persona's indent, on continuation lines too
        assert _columns(line) <= 48 or " " not in line.strip(), line  # only a lone long word overflows
    assert any(line.strip() == url for line in answer)  # the URL is whole, on a line of its own
    unwrapped = chat(tmp_path, question).stdout  # a pipe without COLUMNS: lines as written
    assert max(_columns(line) for line in unwrapped.splitlines() if line.startswith("   ")) > 200


def test_help_wraps_each_description_under_itself(tmp_path):
    out = chat(tmp_path, "/help", env=clean_env(tmp_path, COLUMNS="60")).stdout
    help_lines = out[out.index("Talk to the personas:"):].splitlines()
    assert all(_columns(line) <= 60 for line in help_lines), help_lines
    assert " " * 36 + "current thread (or" in help_lines  # under "follows up in the"


def test_after_close_plain_text_starts_a_new_conversation_and_a_second_close_says_so(tmp_path):
    result = chat(tmp_path, "/investigate intermittent 401s on checkout", "/close", "/close", "/plan", "what should we look at next?")
    out = result.stdout
    assert out.count("closed by") == 1
    assert "your next message starts a new conversation" in out
    assert "is already closed. Start a new one with /investigate TEXT" in out
    assert "is closed; start a new one with /investigate TEXT" in out  # /plan on the closed one
    threads = {t["kind"]: t for t in export(tmp_path)["threads"]}
    assert threads["investigation"]["status"] == "closed"
    assert [t["text"] for t in threads["investigation"]["turns"] if t["role"] == "human"] == ["intermittent 401s on checkout"]
    assert [t["text"] for t in threads["conversation"]["turns"] if t["role"] == "human"] == ["what should we look at next?"]


def test_the_pause_notice_names_no_one_platforms_commands(tmp_path):
    env = clean_env(tmp_path, ORCHESTRA_MAX_AUTO_TURNS="1")
    out = chat(tmp_path, "/investigate intermittent 401s on checkout", "the 401s started after the Tuesday deploy", env=env).stdout
    assert "so I'm pausing here" in out
    assert "challenge / plan / close" not in out
    assert "the actions under the last turn" in out
    assert "→ /challenge · /plan · /close" in out  # what the terminal shows under each turn


# --- a real terminal ------------------------------------------------------------------------------


def _own_terminal() -> None:
    """In the child: make the pty its controlling terminal, so Ctrl-C there is a SIGINT."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`orchestra` in a pseudo-terminal of `columns` (stderr too, when asked), fed to a pyte screen."""

    def __init__(self, tmp_path: Path, *, columns: int = 100, stderr_too: bool = False, **env: str):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli"], cwd=tmp_path, env=clean_env(tmp_path, TERM="xterm", **env),
            stdin=slave, stdout=slave, stderr=slave if stderr_too else subprocess.PIPE, preexec_fn=_own_terminal,
        )
        os.close(slave)
        self.screen = pyte.Screen(columns, 40)
        self.stream = pyte.ByteStream(self.screen)
        self.seen = b""

    def until(self, needle: bytes, timeout: float = 60) -> bytes:
        """Everything read from now until `needle` (and whatever came with it)."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while needle not in self.seen[start:]:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {needle!r}; got {self.seen[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                self.seen += chunk
                self.stream.feed(chunk)
        return self.seen[start:]

    def settle(self, quiet: float = 0.5) -> None:
        """Read until nothing more comes for `quiet` seconds (readline redraws in pieces)."""
        while select.select([self.master], [], [], quiet)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.seen += chunk
            self.stream.feed(chunk)

    def type(self, text: str | bytes) -> None:
        os.write(self.master, text.encode() if isinstance(text, str) else text)

    def finish(self) -> int:
        try:
            code = self.proc.wait(timeout=60)
            while True:  # what was still on its way
                ready, _, _ = select.select([self.master], [], [], 0.2)
                if not ready:
                    break
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                self.seen += chunk
            return code
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self.master)



PROMPT = "you › ".encode()


def test_a_multi_line_paste_is_one_message(tmp_path):
    term = Terminal(tmp_path)
    start = term.until(PROMPT)
    assert b"\x1b[?2004h" in start  # the terminal is asked to bracket pastes
    term.type("\x1b[200~@sophia why did signups drop?\nmobile fell 30%\ndesktop stayed flat\x1b[201~")
    term.type("\r")
    answer = term.until(PROMPT)
    assert answer.count("is thinking…".encode()) == 1
    term.type(b"\x04")
    assert term.finish() == 0
    assert b"\x1b[?2004l" in term.seen[-200:]  # and released on the way out
    (conv,) = export(tmp_path)["threads"]
    (human,) = [t["text"] for t in conv["turns"] if t["role"] == "human"]
    assert human.splitlines() == ["@sophia why did signups drop?", "mobile fell 30%", "desktop stayed flat"]


def test_line_editing_and_history_leave_no_stray_characters(tmp_path):
    term = Terminal(tmp_path, columns=40)
    term.until(PROMPT)
    long_line = "@sophia " + " ".join(f"word{i}" for i in range(12))  # wraps at 40 columns
    term.type(long_line + "\r")
    term.until(PROMPT)
    term.type("ab")
    term.until(b"ab")
    term.type("\x1b[A")  # up: the long line from history
    term.until(b"word11")
    term.type("\x01Z")  # Ctrl-A, then type at the start of the line
    term.until(b"Z")
    term.settle()
    rows = term.screen.display
    at = max(i for i, row in enumerate(rows) if row.startswith("you › Z"))
    expected = "you › Z" + long_line  # as readline wraps it: 40 columns a row, then blanks
    assert "".join(rows[at:at + 3]) == expected.ljust(120), "\n".join(rows)
    assert (term.screen.cursor.y, term.screen.cursor.x) == (at, len("you › Z")), "the cursor is not after the Z"
    term.type(b"\x05\x15\x04")  # Ctrl-E, Ctrl-U: an empty line; Ctrl-D: leave
    assert term.finish() == 0


def test_work_resumed_at_start_up_is_printed_before_the_first_prompt(tmp_path):
    async def leave_an_unfinished_task() -> None:
        memory = await SQLiteMemory.open(tmp_path / "memory.db")
        await memory.accept_task(Task(
            platform="local", workspace="local", channel="terminal", user="ann", text="@sophia did the export run?",
            kind=TaskKind.MESSAGE, thread="old.1", message_id="old.1", event_id="local:old.1",
        ))
        await memory.close()

    asyncio.run(leave_an_unfinished_task())
    term = Terminal(tmp_path)
    before_prompt = term.until(PROMPT)
    assert b"Resuming 1 unfinished task(s)" in before_prompt
    assert "did the export run?".encode() in before_prompt  # Sophia's answer came first
    assert PROMPT not in term.seen[: term.seen.index(b"Resuming")]
    term.type(b"\x04")
    assert term.finish() == 0


def test_log_warnings_go_to_a_file_not_into_the_chat(tmp_path):
    term = Terminal(
        tmp_path, stderr_too=True, OPENAI_API_KEY="sk-test-0123456789abcdef", OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        ORCHESTRA_MODEL_MAX_RETRIES="0", ORCHESTRA_MODEL_TIMEOUT="5",
    )
    log = (tmp_path / "orchestra.log").resolve()
    banner = term.until(PROMPT)
    assert f"log in {log})".encode() in banner  # the banner says where the log is
    term.type("@sophia why did signups drop?\r")
    # one read up to the prompt: the notice and the prompt may arrive in the same chunk
    assert "couldn't finish this".encode() in term.until(PROMPT)
    term.type("/help\r")
    assert str(log).encode() in term.until(PROMPT)  # and so does /help
    term.type(b"\x04")
    assert term.finish() == 0
    assert b"request failed" not in term.seen and b"WARNING" not in term.seen
    logged = log.read_text()
    assert "WARNING" in logged and "request failed" in logged
    assert "sk-test-0123456789abcdef" not in logged


def test_ctrl_c_at_the_prompt_gives_the_terminal_back_as_it_was(tmp_path):
    term = Terminal(tmp_path, stderr_too=True)
    term.until(PROMPT)
    term.type("half a thought")
    term.until(b"thought")
    term.type(b"\x03")  # Ctrl-C
    assert term.proc.wait(timeout=60) == 130
    lflag = termios.tcgetattr(term.master)[3]
    assert lflag & termios.ECHO and lflag & termios.ICANON, "the terminal was left without echo or line editing"
    assert term.finish() == 130
    assert b"\x1b[?2004l" in term.seen  # bracketed paste released
    assert b"Traceback" not in term.seen and b"bye" in term.seen
