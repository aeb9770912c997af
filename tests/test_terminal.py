"""The terminal adapter as a person uses it: a real `orchestra` process, lines in, text out."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

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
        ORCHESTRA_OPENAI_MODEL="llama3.2", DISCORD_TOKEN="discord-secret-token-xyz", ORCHESTRA_LOG_LEVEL="DEBUG",
    )
    result = chat(tmp_path, "/personas", env=env)
    assert result.returncode == 0
    assert "OpenAI-compatible server, model llama3.2 at http://127.0.0.1:9/v1" in result.stdout
    assert "Discord adapter is not part of this version" in result.stdout
    everything = result.stdout + result.stderr
    for leaked in (secret, "hunter2", "key=abc", "discord-secret-token-xyz"):
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
    assert "Karen · critic" in out and "Cherry · planner" in out
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
    result = chat(tmp_path, "/forget", "/memory", args=("--channel", "planning"))
    assert "forgot 1 thread(s)" in result.stdout and "remembers nothing yet" in result.stdout
    assert export(tmp_path, "planning")["threads"] == []


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
