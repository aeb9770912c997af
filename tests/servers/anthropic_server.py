"""A local server for the Anthropic Messages wire format (`POST /v1/messages`).

Give the SDK `base_url=server.url`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.servers import FAST_RETRY, Scripted, ScriptedServer

#: HTTP status → Anthropic's error type.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def message(
    content: list[dict[str, Any]],
    *,
    model: str = "claude-test",
    stop_reason: str = "end_turn",
    usage: tuple[int, int] = (31, 12),
    stop_details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Message object as the API sends it."""
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "stop_details": stop_details,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


def error(status: int, text: str, *, headers: dict[str, str] | None = None) -> Scripted:
    """An error answer in Anthropic's shape: {"type": "error", "error": {"type", "message"}}."""
    kind = ERROR_TYPES.get(status, "api_error")
    if status == 429 or status >= 500:
        headers = {**FAST_RETRY, **(headers or {})}
    body = {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_test"}
    return Scripted(status=status, body=body, headers=headers or {})


class AnthropicServer(ScriptedServer):
    """Records requests to /v1/messages and answers from its script."""

    @property
    def base_url(self) -> str:
        return self.url

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/messages", self.handle)]

    def fallback_reply(self, body: Any) -> Scripted:
        return Scripted(body=message([{"type": "text", "text": "Hello from the local Anthropic server."}], model=_model(body)))

    # --- scripting helpers ------------------------------------------------------------------

    def reply_text(self, text: str, **kwargs: Any) -> None:
        self.push(lambda body: Scripted(body=message([{"type": "text", "text": text}], model=_model(body), **kwargs)))

    def reply_tool(self, tool_input: Any, *, name: str | None = None, **kwargs: Any) -> None:
        """The model calls a tool with this input (the forced tool's name, unless `name`)."""

        def answer(body: Any) -> Scripted:
            chosen = name or ((body or {}).get("tool_choice") or {}).get("name") or "tool"
            block = {"type": "tool_use", "id": "toolu_test", "name": chosen, "input": tool_input}
            return Scripted(body=message([block], model=_model(body), stop_reason="tool_use", **kwargs))

        self.push(answer)

    def reply_refusal(self, category: str | None = "cyber") -> None:
        details = {"type": "refusal", "category": category, "explanation": None} if category else None
        self.push(
            lambda body: Scripted(
                body=message([], model=_model(body), stop_reason="refusal", stop_details=details)
            )
        )

    def rate_limited(self, times: int = 1) -> None:
        for _ in range(times):
            self.push(error(429, "Number of request tokens has exceeded your per-minute rate limit"))

    def server_error(self, times: int = 1, status: int = 500) -> None:
        for _ in range(times):
            self.push(error(status, "Internal server error" if status != 529 else "Overloaded"))

    def slow(self, delay: float, text: str = "too late") -> None:
        self.push(
            lambda body: Scripted(body=message([{"type": "text", "text": text}], model=_model(body)), delay=delay)
        )


def _model(body: Any) -> str:
    return body.get("model", "claude-test") if isinstance(body, dict) else "claude-test"
