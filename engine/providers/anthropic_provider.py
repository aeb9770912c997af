"""Claude through the official `anthropic` SDK.

Structured output is a forced tool call: the mode's JSON Schema is the tool's input schema and
`tool_choice` names that tool, so the model must answer with an object; we hand it on as JSON
text and the engine validates it.

The call is `client.post("/v1/messages", body=..., cast_to=object)`: the same request through
the same client as `messages.create` (headers, retries, timeouts, errors), without the SDK
checking our parameters against its TypedDicts and building its pydantic models from the reply,
which `_response` reads field by field instead: about a quarter of the call's CPU (1.3 → 1.0 ms a
call in a burst), as for OpenAI. Retries (408, 409, 429, 5xx, connection errors) and timeouts are
the SDK's own (`max_retries`, `timeout`); we only translate what is left into `ProviderError`s.

The SDK takes about 2 s to import, so it is imported when a provider is built, not with this
module.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from engine.ports import (
    ModelRequest,
    ModelResponse,
    ProviderError,
    ProviderRefused,
    ProviderUnavailable,
    Usage,
)
from engine.findings import extract_json
from engine.providers._shared import (
    WARM_UP_REQUESTS,
    field_of,
    host_of,
    map_sdk_error,
    pooled_client,
    rehearsal_client,
    scrub,
    tool_name,
)

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

log = logging.getLogger(__name__)

#: A local or proxy server (ANTHROPIC_BASE_URL) may need no key; the SDK still wants one.
PLACEHOLDER_KEY = "not-needed"


class AnthropicProvider:
    """The `Provider` port over `anthropic.AsyncAnthropic`."""

    name = "anthropic"

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        model: str = "claude-sonnet-5-5",
        timeout: float = 60.0,
        max_retries: int = 2,
        max_connections: int | None = None,
    ):
        import anthropic

        self._sdk = anthropic
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self._api_key = api_key
        self._host = host_of(base_url, "api.anthropic.com")
        if not api_key and base_url:
            api_key = PLACEHOLDER_KEY
        # With api_key None (and no base URL) the SDK looks for its own credentials
        # (ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, a profile); none at all is a start-up error.
        missing = ProviderUnavailable("No Anthropic credentials were found: set ANTHROPIC_API_KEY.")
        try:
            self._client: AsyncAnthropic = anthropic.AsyncAnthropic(
                api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries,
                http_client=pooled_client(anthropic, max_connections),
            )
        except anthropic.AnthropicError as err:  # e.g. a profile named but not on disk
            log.warning("anthropic client: %s", scrub(str(err)))
            raise missing from None
        client = self._client
        if not (client.api_key or client.auth_token or getattr(client, "credentials", None)):
            raise missing

    async def generate(self, request: ModelRequest) -> ModelResponse:
        model = request.model or self.model
        kwargs: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages]
            or [{"role": "user", "content": "Please answer."}],
        }
        # The SDK (API version 2026-10-21) has no sampling parameters: request.temperature is
        # not sent. The mode's instructions and schema shape the answer instead.
        if request.system:
            kwargs["system"] = request.system
        name = tool_name(request.schema_name)
        if request.json_schema is not None:
            kwargs["tools"] = [
                {
                    "name": name,
                    "description": (
                        f"Record your {request.schema_name or 'structured'} finding. "
                        "Fill every field; this is your whole answer."
                    ),
                    "input_schema": request.json_schema,
                }
            ]
            kwargs["tool_choice"] = {"type": "tool", "name": name}
        try:
            message = await self._client.post("/v1/messages", body=kwargs, cast_to=object)
        except Exception as err:  # SDK errors, and anything else: never let one escape
            raise self._translate(err, model) from None
        return self._response(message, request, name)

    async def warm_up(self) -> None:
        """Pay the first call's one-time costs before the bot says it is ready (the SDK's lazy
        resources, pydantic building the reply's types): a throwaway client whose transport
        answers at once goes through the whole call path without the network."""
        def message(request: Any) -> dict[str, Any]:
            body = json.loads(request.content or b"{}")
            tools = body.get("tools") or []
            content = ([{"type": "tool_use", "id": "toolu_warm", "name": tools[0]["name"], "input": {}}]
                       if tools else [{"type": "text", "text": "ok"}])
            return {"id": "msg_warm", "type": "message", "role": "assistant", "model": self.model,
                    "content": content, "stop_reason": "tool_use" if tools else "end_turn",
                    "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}

        self._client.messages  # noqa: B018 - the real client's lazy resources, imported now
        async with rehearsal_client(self._sdk.DefaultAsyncHttpxClient, message) as http:
            client = self._sdk.AsyncAnthropic(api_key="warm-up", base_url="http://warm-up.invalid",
                                              http_client=http, max_retries=0)
            real, self._client = self._client, client
            try:
                for request in WARM_UP_REQUESTS:
                    try:
                        await self.generate(request)
                    except ProviderError:
                        pass  # an empty tool input may not satisfy the schema: the path is warm
            finally:
                self._client = real

    def _response(self, message: Any, request: ModelRequest, name: str) -> ModelResponse:
        """`message` is the reply's JSON (a Message object), read field by field."""
        stop_reason = field_of(message, "stop_reason", str)
        if stop_reason == "refusal":
            category = field_of(field_of(message, "stop_details", dict), "category", str)
            about = f" (policy category: {category.replace('_', ' ')})" if category else ""
            raise ProviderRefused(f"The model declined to answer this request{about}.")
        if stop_reason == "model_context_window_exceeded":
            raise ProviderError("The conversation is too long for the model's context window.")

        blocks = [b for b in field_of(message, "content", list) or [] if isinstance(b, dict)]
        texts = [field_of(b, "text", str) for b in blocks if b.get("type") == "text"]
        text = "\n".join(t for t in texts if t).strip()
        if request.json_schema is not None:
            tools = [b for b in blocks if b.get("type") == "tool_use" and "input" in b]
            tool = next((b for b in tools if b.get("name") == name), None) or next(iter(tools), None)
            if tool is not None:
                text = json.dumps(tool["input"], ensure_ascii=False)
            else:
                # No tool call (a proxy that ignores tools, a cut-off answer): pass on whatever
                # JSON the text holds; the engine's repair loop deals with the rest.
                text = extract_json(text)
        if not text:
            if stop_reason == "max_tokens":
                raise ProviderError(
                    f"The model used up its {request.max_tokens}-token budget before answering."
                )
            raise ProviderError("The model sent an empty answer.")
        usage = field_of(message, "usage", dict) or {}
        input_tokens = sum(field_of(usage, key, int) or 0 for key in (
            "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        return ModelResponse(
            text=text,
            usage=Usage(input_tokens=input_tokens, output_tokens=field_of(usage, "output_tokens", int) or 0),
            model=field_of(message, "model", str) or request.model or self.model,
        )

    def _translate(self, err: Exception, model: str) -> Exception:
        log.warning("anthropic request failed: %s", scrub(f"{type(err).__name__}: {err}", [self._api_key]))
        return map_sdk_error(
            err,
            self._sdk,
            label="Anthropic API",
            key_env="ANTHROPIC_API_KEY",
            model_env="ORCHESTRA_ANTHROPIC_MODEL",
            model=model,
            host=self._host,
            timeout=self.timeout,
            max_retries=self.max_retries,
            secrets=[self._api_key],
        )

    async def aclose(self) -> None:
        await self._client.close()
