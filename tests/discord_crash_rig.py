"""A real `orchestra` process on the local Discord and OpenAI stand-ins, killed with SIGKILL.

Used by `tests/test_discord_crash.py`. The process gets DISCORD_TOKEN, DISCORD_API_URL and
DISCORD_GATEWAY_URL pointing at a `DiscordServer` running in the test process; each start is a new
gateway session (IDENTIFY), as after a real crash: Discord replays nothing to it. `audit()` reads
what the local Discord shows people (edits applied) and what the database holds, and counts what
must never happen, as `tests.crash_rig` does for Slack.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from tests.crash_rig import ROOT, Figures, Model, Orchestra, Sent
from tests.servers.discord_api import TOKEN, DiscordServer

THINKING = "is thinking"


def key_of(message: dict[str, Any]) -> str | None:
    """The part key a stored message carries in its last embed's footer (as render.key_of reads it)."""
    from adapters.discord.render import FOOTER_SEP, KEY_RE

    for embed in reversed(message.get("embeds") or []):
        text = (embed.get("footer") or {}).get("text")
        if text:
            last = text.rsplit(FOOTER_SEP, 1)[-1]
            return last if KEY_RE.fullmatch(last) else None
    return None


def thinking(message: dict[str, Any]) -> bool:
    return any(THINKING in (e.get("description") or "") for e in message.get("embeds") or []) or THINKING in (
        message.get("content") or "")


class DiscordOrchestra(Orchestra):
    """`orchestra` processes in a row on one database, talking to one local Discord."""

    def __init__(self, tmp: Path, discord: DiscordServer, model: Model, **settings: str):
        super().__init__(tmp, None, model, **settings)  # type: ignore[arg-type]
        self.discord = discord

    def env(self, crash_at: str | None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.tmp),
            "PYTHONPATH": str(ROOT),
            "DISCORD_TOKEN": TOKEN,
            "DISCORD_API_URL": self.discord.url,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
            "ORCHESTRA_DB": str(self.db),
            "ORCHESTRA_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-local-test",
            "OPENAI_BASE_URL": self.model.base_url,
            "ORCHESTRA_MODEL_TIMEOUT": "600",
            "ORCHESTRA_MODEL_MAX_RETRIES": "0",
            "ORCHESTRA_LOG_LEVEL": "INFO",
            **self.settings,
        }
        if crash_at:
            env["_ORCHESTRA_CRASH_AT"] = crash_at
        return env

    async def start(self, crash_at: str | None = None) -> None:
        gateway = self.discord.gateway
        before = len(gateway.identifies)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", cwd=self.tmp, env=self.env(crash_at),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        # a new session (discord.py cannot resume the dead process's): IDENTIFY, READY, GUILD_CREATE
        await self.discord.wait_for(
            lambda: len(gateway.identifies) > before and gateway.ws is not None and not gateway.ws.closed
            or self.process.returncode is not None, timeout=30)  # type: ignore[union-attr]
        assert self.process.returncode is None, "orchestra stopped before it connected to the local Discord"

    # --- what people do -----------------------------------------------------------------------

    async def mention(self, text: str) -> Sent:  # type: ignore[override]
        message = await self.discord.mention(text)
        sent = Sent("mention", text, message["id"])  # its answer goes in the thread made from it
        self.sent.append(sent)
        return sent

    async def dm(self, text: str) -> Sent:
        message = await self.discord.dm(text)
        sent = Sent("mention", text, message["channel_id"])  # a DM is answered in the DM channel
        self.sent.append(sent)
        return sent

    async def investigate(self, text: str) -> Sent:  # type: ignore[override]
        sent = Sent("investigate", text)
        self.sent.append(sent)
        payload = await self.discord.slash_command("investigate", {"problem": text})
        # stored before acknowledged; a crash point may kill the process just after either
        await self.discord.wait_for(lambda: self.discord.callbacks_for(payload) or self.process.returncode is not None,  # type: ignore[union-attr]
                                    timeout=30)
        return sent

    # --- waiting ------------------------------------------------------------------------------

    quiet = 0.5

    def platform_calls(self) -> int:
        return len(self.discord.requests)

    # --- the audit ----------------------------------------------------------------------------

    def shown(self) -> list[dict[str, Any]]:
        """Every message Discord shows now (edits applied), oldest first."""
        return sorted(self.discord.messages.values(), key=lambda m: int(m["id"]))

    def audit(self) -> Figures:
        figures = Figures(kills=self.kills, events=len(self.sent))
        shown = self.shown()
        keys = [k for m in shown if (k := key_of(m))]
        for key in sorted(set(keys)):
            if keys.count(key) > 1:
                figures.doubled += keys.count(key) - 1
                figures.problems.append(f"posted {keys.count(key)} times: {key}")
        for m in shown:
            if thinking(m):
                figures.dangling += 1
                figures.problems.append(f"placeholder left: {m['id']} in {m['channel_id']}")
        for sent in self.sent:
            if sent.kind == "mention":
                answers = [m for m in shown if m["channel_id"] == sent.ts and (key_of(m) or "").startswith("turn:")]
            else:
                answers = [m for m in shown if (key_of(m) or "").startswith("root:") and sent.text in json.dumps(m)]
            if not answers:
                figures.lost += 1
                figures.problems.append(f"never answered: {sent.text!r}")
            elif len(answers) > 1 and sent.kind == "investigate":
                figures.doubled += len(answers) - 1
        with sqlite3.connect(self.db) as con:
            figures.unfinished = self.unfinished()
            figures.duplicate_human_turns = con.execute(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM turns "
                "WHERE role = 'human' GROUP BY task_id, thread_id HAVING n > 1)"
            ).fetchone()[0]
            told = {"paused": ("paused:", "error"), "closed": ("limit:", "close:"), "waiting": ("ask:",),
                    "complete": ("done:",)}
            for rec_id, status, thread in con.execute(
                "SELECT id, status, thread FROM threads WHERE kind = 'investigation'"
            ).fetchall():
                if status not in told:
                    continue
                said = [k for m in shown if m["channel_id"] == thread and (k := key_of(m))]
                if not any(k.startswith(told[status]) for k in said):
                    figures.paused_without_notice += 1
                    figures.problems.append(f"{rec_id} is {status} and nobody was told")
        return figures


def last_buttons(rig: DiscordOrchestra) -> tuple[int, str]:
    """(message id, challenge custom id) of the latest message showing buttons."""
    for m in reversed(rig.shown()):
        ids = [c["custom_id"] for row in m.get("components") or [] for c in row.get("components", [])]
        challenge = [c for c in ids if c.startswith("orchestra:challenge:")]
        if challenge:
            return int(m["id"]), challenge[0]
    raise AssertionError("no message with buttons")
