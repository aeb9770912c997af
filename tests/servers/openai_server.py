"""A local server for the OpenAI Chat Completions wire format (`POST /v1/chat/completions`).

Give the SDK `base_url=server.url + "/v1"` (see `OpenAIServer.base_url`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from tests.servers import FAST_RETRY, Scripted, ScriptedServer


def completion(
    content: str | None,
    *,
    model: str = "gpt-test",
    refusal: str | None = None,
    finish_reason: str = "stop",
    usage: tuple[int, int] = (21, 9),
) -> dict[str, Any]:
    """A chat.completion object as the API sends it."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        },
    }


def error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Scripted:
    """An error answer in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    if status == 429 or status >= 500:
        headers = {**FAST_RETRY, **(headers or {})}
    return Scripted(status=status, body=body, headers=headers or {})


#: What llama.cpp-style servers say when they do not take a response format.
JSON_SCHEMA_UNSUPPORTED = "response_format of type json_schema is not supported by this server"
JSON_OBJECT_UNSUPPORTED = "response_format of type json_object is not supported by this server"


class OpenAIServer(ScriptedServer):
    """Records requests to /v1/chat/completions and answers from its script."""

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self.handle),
            web.post("/chat/completions", self.handle),
        ]

    def fallback_reply(self, body: Any) -> Scripted:
        model = body.get("model", "gpt-test") if isinstance(body, dict) else "gpt-test"
        return Scripted(body=completion("Hello from the local OpenAI server.", model=model))

    # --- scripting helpers ------------------------------------------------------------------

    def reply_text(self, text: str | None, **kwargs: Any) -> None:
        """The model answers with this content (the request's model is echoed back)."""
        self.push(lambda body: Scripted(body=completion(text, model=_model(body), **kwargs)))

    def reply_json(self, obj: Any, **kwargs: Any) -> None:
        self.reply_text(json.dumps(obj), **kwargs)

    def reply_refusal(self, refusal: str = "I'm sorry, I can't help with that.") -> None:
        self.reply_text(None, refusal=refusal)

    def rate_limited(self, times: int = 1) -> None:
        for _ in range(times):
            self.push(error(429, "Rate limit reached for requests", type="requests", code="rate_limit_exceeded"))

    def server_error(self, times: int = 1, status: int = 500) -> None:
        for _ in range(times):
            self.push(error(status, "The server had an error while processing your request.", type="server_error"))

    def slow(self, delay: float, text: str = "too late") -> None:
        self.push(lambda body: Scripted(body=completion(text, model=_model(body)), delay=delay))

    def act_like_local_server(self, *, json_object: bool, text: str) -> None:
        """From now on answer like a compatible server without json_schema support: a 400 for
        response_format json_schema (and for json_object too unless `json_object`), else `text`.
        """

        def answer(body: Any) -> Scripted:
            kind = (body.get("response_format") or {}).get("type") if isinstance(body, dict) else None
            if kind == "json_schema":
                return error(400, JSON_SCHEMA_UNSUPPORTED, param="response_format")
            if kind == "json_object" and not json_object:
                return error(400, JSON_OBJECT_UNSUPPORTED, param="response_format")
            return Scripted(body=completion(text, model=_model(body)))

        self.always(answer)


def _model(body: Any) -> str:
    return body.get("model", "gpt-test") if isinstance(body, dict) else "gpt-test"


def agent_role(body: Any) -> str | None:
    """The crewai agent a request comes from: its system prompt opens "You are ROLE. backstory"."""
    if not isinstance(body, dict):
        return None
    for message in body.get("messages") or []:
        if message.get("role") == "system":
            content = message.get("content") or ""
            content = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
            if content.startswith("You are ") and "Your personal goal is" in content:
                return content[len("You are "):].split(".", 1)[0].strip()
    return None


def act_like_crew_model(server: OpenAIServer, answers: dict[str, str] | None = None, *,
                        review: str = "A sound piece of work.\nVerdict: go", delay: float = 0.0) -> list[str]:
    """From now on answer crewai's agents (by role: `answers[role]`, else a generic final answer)
    in crewai's ReAct format, and everything else (the orchestrator's reviews) with `review`.
    Returns the list the roles of the agents' requests are appended to, in order."""
    roles: list[str] = []

    def answer(body: Any) -> Scripted:
        role = agent_role(body)
        if role is None:
            return Scripted(body=completion(review, model=_model(body), usage=(40, 12)), delay=delay)
        roles.append(role)
        text = (answers or {}).get(role, f"The {role}'s part of the work, done.")
        if not body.get("tools"):  # without native tool calling crewai reads the ReAct format
            text = f"Thought: I have what I need.\nFinal Answer: {text}"
        return Scripted(body=completion(text, model=_model(body),
                                        usage=(100, 25)), delay=delay)

    server.always(answer)
    return roles
