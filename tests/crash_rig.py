"""A real `orchestra` process on the local Slack and OpenAI stand-ins, killed with SIGKILL.

Used by `tests/test_crash.py` (kills at chosen moments) and `benchmarks/bench_crash.py` (kills
at random moments). `audit()` reads what the Slack stand-in shows people and what the database
holds, and counts what must never happen: an event lost or answered twice, a "thinking"
placeholder left standing, a pause nobody was told of, the person's message stored twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes import by_mode
from tests.servers import Scripted
from tests.servers.openai_server import OpenAIServer, completion
from tests.servers.slack_api import (
    SlackApiServer,
    command_payload,
    event_envelope,
    mention_event,
    signed_headers,
    socket_envelope,
)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-0000-secret-bot-token"
APP_TOKEN = "xapp-1-secret-app-token"
HANG = 3600.0  # a model call that never returns (the process dies first)
THINKING = "is thinking"


class Model(OpenAIServer):
    """Answers every request well (a valid finding per schema); `hang_on` request numbers hang."""

    def __init__(self) -> None:
        super().__init__()
        self.hang_on: set[int] = set()
        self.latency: tuple[float, float] = (0.0, 0.0)  # a random think time per request
        self.always(self._answer)

    def _answer(self, body: Any) -> Scripted:
        n = len(self.requests)
        fmt = (body.get("response_format") or {}) if isinstance(body, dict) else {}
        name = (fmt.get("json_schema") or {}).get("name")
        from engine.ports import ModelRequest

        text = by_mode(ModelRequest(system="", messages=[], schema_name=name))
        import random

        delay = HANG if n in self.hang_on else random.uniform(*self.latency)
        return Scripted(body=completion(text), delay=delay)


@dataclass
class Sent:
    kind: str  # "mention" or "investigate"
    text: str
    ts: str = ""  # a mention's ts: its answer goes in that thread
    envelope: dict[str, Any] | None = None  # Socket Mode: sent again until acknowledged, as Slack does


@dataclass
class Figures:
    kills: int = 0
    events: int = 0
    lost: int = 0
    doubled: int = 0
    dangling: int = 0
    paused_without_notice: int = 0
    duplicate_human_turns: int = 0
    unfinished: int = 0
    problems: list[str] = field(default_factory=list)

    def clean(self) -> bool:
        return not (self.lost or self.doubled or self.dangling or self.paused_without_notice
                    or self.duplicate_human_turns or self.unfinished)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orchestra:
    """One database, one Slack, one model; as many `orchestra` processes in a row as it takes."""

    live: list["Orchestra"] = []  # every rig made, so a failed test can kill what it left running

    @classmethod
    def kill_leftovers(cls) -> None:
        for rig in cls.live:
            if rig.process is not None and rig.process.returncode is None:
                rig.process.kill()
        cls.live.clear()

    def __init__(self, tmp: Path, slack: SlackApiServer, model: Model, *, http: bool = False, **settings: str):
        self.tmp = tmp
        self.db = tmp / "orchestra.db"
        self.slack = slack
        self.model = model
        self.http = http
        self.port = free_port() if http else 0
        self.settings = settings
        self.process: asyncio.subprocess.Process | None = None
        self.sent: list[Sent] = []
        self.kills = 0
        self.logs: list[str] = []
        Orchestra.live.append(self)

    def env(self, crash_at: str | None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.tmp),
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": self.slack.api_url,
            "ORCHESTRA_DB": str(self.db),
            "ORCHESTRA_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-local-test",
            "OPENAI_BASE_URL": self.model.base_url,
            "ORCHESTRA_MODEL_TIMEOUT": "600",
            "ORCHESTRA_MODEL_MAX_RETRIES": "0",
            "ORCHESTRA_LOG_LEVEL": "INFO",
            **self.settings,
        }
        env.update({"SLACK_SIGNING_SECRET": SECRET} if self.http else {"SLACK_APP_TOKEN": APP_TOKEN})
        if crash_at:
            env["_ORCHESTRA_CRASH_AT"] = crash_at
        return env

    async def start(self, crash_at: str | None = None) -> None:
        args = ["--slack-http", "--port", str(self.port)] if self.http else []
        self.slack._connected.clear()  # noqa: SLF001 - wait for this process's connection
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", *args, cwd=self.tmp, env=self.env(crash_at),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        if self.http:
            await self._wait_http()
        else:
            await self.slack.wait_connected(timeout=30)

    async def _wait_http(self) -> None:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/health") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("orchestra did not start listening")

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a power cut."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self._reap()
        self.kills += 1

    async def died(self, timeout: float = 30) -> None:
        """Wait for a process that was told to kill itself (a crash point)."""
        assert self.process is not None
        await asyncio.wait_for(self.process.wait(), timeout)
        assert self.process.returncode == -signal.SIGKILL, f"exit {self.process.returncode}: {self.logs[-1:]}"
        await self._reap()
        self.kills += 1

    async def stop(self) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        await self._reap()

    async def _reap(self) -> None:
        assert self.process is not None
        _, err = await asyncio.wait_for(self.process.communicate(), 30)
        self.logs.append(err.decode(errors="replace"))

    # --- what people do -----------------------------------------------------------------------

    async def mention(self, text: str) -> Sent:
        event = mention_event(text)
        sent = Sent("mention", text, event["ts"])
        self.sent.append(sent)
        body = event_envelope(event)
        if self.http:
            await self.post_http(json.dumps(body), "application/json")
        else:
            sent.envelope = socket_envelope("events_api", body)
            await self.slack.send_envelope(sent.envelope)
        return sent

    async def investigate(self, text: str) -> Sent:
        sent = Sent("investigate", text)
        self.sent.append(sent)
        payload = command_payload("/investigate", text, response_url=self.slack.response_url())
        sent.envelope = socket_envelope("slash_commands", payload)
        await self.slack.send_envelope(sent.envelope)
        return sent

    async def resend_unacknowledged(self) -> int:
        """What Slack does after a reconnection: envelopes never acknowledged come again."""
        again = [s for s in self.sent if s.envelope and s.envelope["envelope_id"] not in self.slack.acks]
        for sent in again:
            assert sent.envelope is not None
            sent.envelope = {**sent.envelope, "retry_attempt": sent.envelope.get("retry_attempt", 0) + 1,
                             "retry_reason": "timeout"}
            await self.slack.send_envelope(sent.envelope)
        return len(again)

    async def post_http(self, body: str, content_type: str) -> int:
        """One signed request to orchestra's /slack/events; returns when its answer arrives."""
        headers = signed_headers(SECRET, body, content_type=content_type)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{self.port}/slack/events", data=body, headers=headers) as r:
                await r.read()
                return r.status

    # --- waiting ------------------------------------------------------------------------------

    def unfinished(self) -> int:
        if not self.db.exists():
            return 0
        with sqlite3.connect(self.db) as con:
            return con.execute("SELECT count(*) FROM tasks WHERE status IN ('accepted', 'running')").fetchone()[0]

    def stored(self) -> int:
        if not self.db.exists():
            return 0
        with sqlite3.connect(self.db) as con:
            return con.execute("SELECT count(*) FROM tasks").fetchone()[0]

    #: How long the platform must stay quiet before the work counts as settled.
    quiet = 0.3

    def platform_calls(self) -> int:
        """How many calls the platform stand-in has had (Slack's Web API here)."""
        return len(self.slack.calls)

    async def settle(self, expected_tasks: int, timeout: float = 60) -> None:
        """Until every expected task is stored and finished, and the platform has been quiet a moment."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.platform_calls()
            if self.stored() >= expected_tasks and self.unfinished() == 0:
                await asyncio.sleep(self.quiet)
                if self.platform_calls() == calls:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"work did not finish: {self.unfinished()} unfinished; {self.logs[-1:]}")

    # --- the audit ----------------------------------------------------------------------------

    def audit(self) -> Figures:
        figures = Figures(kills=self.kills, events=len(self.sent))
        shown = self.slack.final_messages()
        keys = [_key(m) for m in shown if _key(m)]
        for key in sorted(set(keys)):
            if keys.count(key) > 1:
                figures.doubled += keys.count(key) - 1
                figures.problems.append(f"posted {keys.count(key)} times: {key}")
        for m in shown:
            if THINKING in m.get("text", ""):
                figures.dangling += 1
                figures.problems.append(f"placeholder left: {m['ts']} in {m.get('thread_ts')}")
        for sent in self.sent:
            if sent.kind == "mention":
                answers = [m for m in shown if m.get("thread_ts") == sent.ts and (_key(m) or "").startswith("turn:")]
            else:
                answers = [m for m in shown if (_key(m) or "").startswith("root:") and sent.text in m.get("text", "")]
            if not answers:
                figures.lost += 1
                figures.problems.append(f"never answered: {sent.text!r}")
            elif len(answers) > 1 and sent.kind == "investigate":
                figures.doubled += len(answers) - 1  # two investigations for one command
        with sqlite3.connect(self.db) as con:
            figures.unfinished = self.unfinished()
            figures.duplicate_human_turns = con.execute(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM turns "
                "WHERE role = 'human' GROUP BY task_id, thread_id HAVING n > 1)"
            ).fetchone()[0]
            told = {"paused": ("paused:", "error"), "closed": ("limit:", "close:"), "waiting": ("ask:",), "complete": ("done:",)}
            for rec_id, status, thread in con.execute(
                "SELECT id, status, thread FROM threads WHERE kind = 'investigation'"
            ).fetchall():
                if status not in told:
                    continue
                said = [k for m in shown if m.get("thread_ts") == thread and (k := _key(m))]
                if not any(k.startswith(told[status]) for k in said):
                    figures.paused_without_notice += 1
                    figures.problems.append(f"{rec_id} is {status} and nobody was told")
        return figures


def _key(message: dict[str, Any]) -> str | None:
    meta = message.get("metadata") or {}
    payload = meta.get("event_payload") or {}
    if meta.get("event_type") != "orchestra_post" or payload.get("part"):
        return None
    return payload.get("key")
