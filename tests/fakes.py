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


class FakeOutbox:
    """Records every post; ROOT posts open a new thread (their own id), like Slack's ts."""

    def __init__(self, fail_times: int = 0) -> None:
        self.posts: list[Reply] = []
        self.working_calls: list[tuple[str, str, str | None]] = []
        self._ids = itertools.count(1)
        self.fail_times = fail_times

    async def post(self, reply: Reply) -> PostedMessage:
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("platform down")
        message_id = f"m{next(self._ids)}"
        self.posts.append(reply)
        return PostedMessage(message_id=message_id, thread=reply.thread or message_id)

    async def working(self, voice: Voice, channel: str, thread: str | None) -> None:
        self.working_calls.append((voice.name, channel, thread))

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
