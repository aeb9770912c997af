"""Small in-memory fakes for our own ports (Outbox, Provider). A misspelt method fails loudly."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from collections.abc import Callable
from typing import Any

from engine.models import PostedMessage, Reply, Voice
from engine.ports import ModelRequest, ModelResponse, ProviderError, Usage


class Crash(BaseException):
    """The process dies here: an in-process stand-in for SIGKILL (no `except Exception` stops it)."""


class FakeOutbox:
    """Records every post; ROOT posts open a new thread (their own id), like Slack's ts.

    `shown` is the platform's side: every message as it now reads (id -> fields), placeholders
    included, each with its key, as Slack's message metadata would carry it. Pass the `shown`
    of an earlier outbox to stand for the same platform after a restart. `crash_before` /
    `crash_after(reply)` raise `Crash` before the platform takes a post / just after.
    """

    def __init__(self, fail_times: int = 0, *, placeholders: bool = True, shown: dict[str, dict] | None = None) -> None:
        self.posts: list[Reply] = []
        self.working_calls: list[tuple[str, str, str | None]] = []
        self.shown: dict[str, dict] = {} if shown is None else shown
        self._ids = itertools.count(len(self.shown) + 1)
        self.fail_times = fail_times
        self.placeholders = placeholders
        self.crash_before: Callable[[Reply], bool] | None = None
        self.crash_after: Callable[[Reply], bool] | None = None

    async def post(self, reply: Reply, replace: str | None = None, resume: PostedMessage | None = None) -> PostedMessage:
        if resume is not None:
            return resume  # one message a reply here: nothing else can be missing
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("platform down")
        if self.crash_before and self.crash_before(reply):
            raise Crash(reply.key)
        message_id = replace if replace in self.shown else f"m{next(self._ids)}"
        self.posts.append(reply)
        thread = reply.thread or message_id
        self.shown[message_id] = {"text": reply.text, "key": reply.key, "thread": thread, "placeholder": False,
                                  "persona": reply.voice.name}
        if self.crash_after and self.crash_after(reply):
            raise Crash(reply.key)
        return PostedMessage(message_id=message_id, thread=thread)

    async def working(self, voice: Voice, channel: str, thread: str | None, key: str = "") -> str | None:
        self.working_calls.append((voice.name, channel, thread))
        if not self.placeholders:
            return None
        message_id = f"m{next(self._ids)}"
        self.shown[message_id] = {"text": f"{voice.display_name} is thinking…", "key": key, "thread": thread,
                                  "placeholder": True, "persona": voice.name}
        return message_id

    async def find_posted(self, channel: str, thread: str | None, key: str) -> PostedMessage | None:
        for message_id, m in self.shown.items():
            if m["key"] == key:
                return PostedMessage(message_id=message_id, thread=m["thread"])
        return None

    def dangling(self) -> list[str]:
        """Placeholders still saying "thinking" (never replaced)."""
        return [mid for mid, m in self.shown.items() if m["placeholder"]]

    def kinds(self) -> list[str]:
        return [r.kind.value for r in self.posts]

    def turns(self) -> list[Reply]:
        return [r for r in self.posts if r.kind.value == "turn"]


Script = Callable[[ModelRequest], str | ModelResponse | Exception]


class ScriptedProvider:
    """Answers from a queue (then from `fallback`): text, a ModelResponse, or an exception to raise."""

    name = "scripted"

    def __init__(self, *answers: Any, fallback: Script | None = None, delay: float = 0.0) -> None:
        self.answers: deque[Any] = deque(answers)
        self.fallback = fallback
        self.delay = delay
        self.requests: list[ModelRequest] = []

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answers.popleft() if self.answers else (self.fallback(request) if self.fallback else "")
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, ModelResponse):
            return answer
        if isinstance(answer, dict):
            answer = json.dumps(answer)
        return ModelResponse(text=answer, usage=Usage(input_tokens=10, output_tokens=5), model="scripted-1")

    async def aclose(self) -> None:
        pass


# Findings that pass validation, for scripting whole investigations.

def research(confidence: str = "medium", *, gaps: list[tuple[str, bool]] | None = None, summary: str = "Tokens expire early") -> dict:
    return {
        "summary": summary,
        "evidence": [{"claim": "401s cluster after 55 minutes", "source": "the person's message"}],
        "patterns": ["failures repeat hourly"],
        "hypothesis": {"statement": "token refresh races with checkout", "confidence": confidence},
        "gaps": [{"question": q, "needs_people": p} for q, p in (gaps or [("which region?", False)])],
    }


def critique(remaining: str = "medium") -> dict:
    return {
        "summary": "Plausible but unproven",
        "challenges": ["no logs from the gateway"],
        "vulnerabilities": ["small sample"],
        "alternatives": [
            {"statement": "clock skew on one node", "why": "hourly pattern"},
            {"statement": "CDN caching auth errors", "why": "same URLs"},
        ],
        "risks": ["fixing the wrong thing"],
        "remaining_confidence": remaining,
    }


def plan() -> dict:
    return {
        "summary": "Fix refresh, then verify",
        "phases": [
            {"name": "Confirm", "steps": ["add refresh logging"], "success_criteria": ["race seen in logs"], "duration": "2 days"}
        ],
        "timeline": "1 week",
        "dependencies": ["gateway team"],
        "risks": [{"risk": "logging volume", "mitigation": "sample 10%"}],
        "metrics": ["401 rate < 0.1%"],
    }


def by_mode(request: ModelRequest) -> str:
    """A well-behaved model: a valid finding for whatever mode is asked, prose otherwise."""
    made = {"researcher": research, "critic": critique, "planner": plan}
    if request.schema_name in made:
        return json.dumps(made[request.schema_name]())
    return "Here is my answer."


def failing(error: ProviderError) -> Script:
    def raise_it(request: ModelRequest) -> Exception:
        return error

    return raise_it
