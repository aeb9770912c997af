"""OpenAI, and OpenAI-compatible local servers (Ollama, vLLM, llama.cpp), through the `openai` SDK.

Structured output asks for `response_format={"type": "json_schema", ..., "strict": True}`. Not
every compatible server has that, so the provider steps down when a server says no (a 400 that
names response_format / json_schema, or a 422 or 501): first to `{"type": "json_object"}` with the
schema described in the system prompt, then to plain text with the schema in the prompt, pulling
the JSON out of the reply. The level that worked is remembered, so later calls go straight to it.

Retries and timeouts are the SDK's own; the SDK is imported when a provider is built (it takes
about a second), not with this module.
"""

from __future__ import annotations

import logging
from enum import IntEnum
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
    error_message,
    field_of,
    pooled_client,
    rehearsal_client,
    host_of,
    map_sdk_error,
    schema_instructions,
    scrub,
    short_detail,
    tool_name,
)

if TYPE_CHECKING:
    from openai import AsyncOpenAI

log = logging.getLogger(__name__)

#: Local servers take any key, but the SDK insists on one.
PLACEHOLDER_KEY = "not-needed"

#: Models that only accept their default temperature (reasoning models).
_FIXED_TEMPERATURE_PREFIXES = ("o1", "o3", "o4", "gpt-5")

_RESPONSE_FORMAT_WORDS = (
    "response_format",
    "response format",
    "json_schema",
    "json schema",
    "json_object",
    "structured output",
)

#: How servers say that they do not take a parameter.
_UNSUPPORTED_WORDS = ("support", "unrecognized", "unknown", "not permitted", "not allowed", "extra")


async def _create(client: AsyncOpenAI, params: dict[str, Any]) -> Any:
    """`client.chat.completions.create(**params)`, minus two walks the SDK makes for every call,
    which together were about a seventh of the bot's CPU in a burst: checking `params` against its
    TypedDicts (`async_maybe_transform`, there for aliased and date-typed fields, which chat
    completions do not have: ours are plain strings, numbers and dicts already), and building its
    pydantic models from the reply (`cast_to=object` gives the reply's JSON as sent, which
    `OpenAIProvider._response` reads). The same request, through the same client (`client.post`
    is the SDK's documented way to call a route directly), with the same retries, timeouts and
    errors."""
    return await client.post("/chat/completions", body=params, cast_to=object)


class StructuredLevel(IntEnum):
    """How we ask for JSON, from best to most basic."""

    JSON_SCHEMA = 0  # native strict structured output
    JSON_OBJECT = 1  # JSON mode; the schema is described in the system prompt
    PROMPT = 2  # plain text; the schema is in the prompt and we extract the JSON


class OpenAIProvider:
    """The `Provider` port over `openai.AsyncOpenAI`."""

    name = "openai"

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        model: str = "gpt-5.4-mini",
        timeout: float = 60.0,
        max_retries: int = 2,
        max_connections: int | None = None,
    ):
        import openai

        self._sdk = openai
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self._api_key = api_key
        self._host = host_of(base_url, "api.openai.com")
        #: Remembered per provider: how this server takes structured output.
        self.structured_level = StructuredLevel.JSON_SCHEMA
        # OpenAI's own API wants max_completion_tokens (reasoning models reject max_tokens);
        # compatible servers know max_tokens. A 400 naming the other one switches.
        self._token_param = "max_completion_tokens" if self._host == "api.openai.com" else "max_tokens"
        self._token_param_switched = False
        self._no_temperature: set[str] = set()  # models that refused a temperature
        try:
            self._client: AsyncOpenAI = openai.AsyncOpenAI(
                api_key=api_key or (PLACEHOLDER_KEY if base_url else None),
                base_url=base_url,
                timeout=timeout,
                max_retries=max_retries,
                http_client=pooled_client(openai, max_connections),
            )
        except openai.OpenAIError:  # no key anywhere (the SDK also reads OPENAI_API_KEY)
            raise ProviderUnavailable(
                "No OpenAI API key was found: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server."
            ) from None

    async def generate(self, request: ModelRequest) -> ModelResponse:
        model = request.model or self.model
        structured = request.json_schema is not None
        # Each adaptation (temperature, token parameter, structured level) happens at most once,
        # so this loop is short and always ends.
        for _ in range(6):
            level = self.structured_level if structured else None
            try:
                completion = await _create(self._client, self._params(request, model, level))
            except Exception as err:  # SDK errors, and anything else: never let one escape
                if isinstance(err, self._sdk.APIStatusError) and self._adapt(err, model, level):
                    continue
                raise self._translate(err, model) from None
            return self._response(completion, request, model, level)
        raise ProviderError("The model server kept rejecting our requests; see the log for details.")

    async def warm_up(self) -> None:
        """Pay the first call's one-time costs before the bot says it is ready: the SDK imports its
        resources on first use (about half a second, on the event loop), and its request path
        (options, headers, the transport) builds what it caches on the first call. A throwaway
        client whose transport answers at once goes through the whole call path (`_create`:
        request building, sending, reading the reply) without the network."""
        completion = {
            "id": "warm-up", "object": "chat.completion", "created": 0, "model": self.model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": '{"ok": true}', "refusal": None}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        self._client.chat.completions  # noqa: B018 - the real client's lazy resources, imported now
        async with rehearsal_client(self._sdk.DefaultAsyncHttpxClient, completion) as http:
            client = self._sdk.AsyncOpenAI(api_key="warm-up", base_url="http://warm-up.invalid/v1",
                                           http_client=http, max_retries=0)
            for request in WARM_UP_REQUESTS:
                level = StructuredLevel.JSON_SCHEMA if request.json_schema is not None else None
                params = self._params(request, self.model, level)
                self._response(await _create(client, params), request, self.model, level)

    # --- building the request ----------------------------------------------------------------

    def _params(self, request: ModelRequest, model: str, level: StructuredLevel | None) -> dict[str, Any]:
        system = request.system
        params: dict[str, Any] = {"model": model, self._token_param: request.max_tokens}
        if model not in self._no_temperature and not model.startswith(_FIXED_TEMPERATURE_PREFIXES):
            params["temperature"] = request.temperature
        if level is not None:
            schema = request.json_schema or {}
            if level == StructuredLevel.JSON_SCHEMA:
                params["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": tool_name(request.schema_name),
                        "schema": schema,
                        "strict": True,
                    },
                }
            else:
                system = f"{system}\n\n{schema_instructions(schema)}".strip()
                if level == StructuredLevel.JSON_OBJECT:
                    params["response_format"] = {"type": "json_object"}
        messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        params["messages"] = messages
        return params

    def _adapt(self, err: Any, model: str, level: StructuredLevel | None) -> bool:
        """Change what we send after a server said no to part of it; True: try again."""
        status = err.status_code
        text = f"{err.param or ''} {error_message(err.body, err.message)}".lower()
        unsupported = status == 400 and any(word in text for word in _UNSUPPORTED_WORDS)
        if unsupported and "temperature" in text and model not in self._no_temperature:
            self._no_temperature.add(model)
            log.info("%s does not take a temperature; sending none from now on", model)
            return True
        if unsupported and not self._token_param_switched and self._token_param in text:
            self._token_param_switched = True
            other = "max_tokens" if self._token_param == "max_completion_tokens" else "max_completion_tokens"
            log.info("%s does not take %s; sending %s from now on", self._host, self._token_param, other)
            self._token_param = other
            return True
        if level is None or level == StructuredLevel.PROMPT:
            return False
        rejects_format = status in (422, 501) or (
            status == 400 and any(word in text for word in _RESPONSE_FORMAT_WORDS)
        )
        if not rejects_format:
            return False
        self.structured_level = StructuredLevel(level + 1)
        log.warning(
            "%s rejected %s structured output (%s: %s); using %s from now on",
            self._host,
            level.name.lower(),
            status,
            short_detail(error_message(err.body, err.message), [self._api_key]),
            self.structured_level.name.lower(),
        )
        return True

    # --- reading the reply -------------------------------------------------------------------

    def _response(
        self,
        completion: Any,
        request: ModelRequest,
        model: str,
        level: StructuredLevel | None,
    ) -> ModelResponse:
        """`completion` is the reply's JSON (`_create`), read field by field."""
        choices = field_of(completion, "choices", list)
        if not choices:
            raise ProviderError("The model sent no answer.")
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = field_of(choice, "message", dict) or {}
        refusal = field_of(message, "refusal", str)
        if refusal:
            raise ProviderRefused(
                f"The model declined to answer: {short_detail(refusal, [self._api_key])}"
            )
        finish_reason = field_of(choice, "finish_reason", str)
        if finish_reason == "content_filter":
            raise ProviderRefused("The model provider's content filter stopped the answer.")
        text = (field_of(message, "content", str) or "").strip()
        if level is not None:
            text = extract_json(text)
        if not text:
            if finish_reason == "length":
                raise ProviderError(
                    f"The model used up its {request.max_tokens}-token budget before answering."
                )
            raise ProviderError("The model sent an empty answer.")
        usage = field_of(completion, "usage", dict) or {}
        return ModelResponse(
            text=text,
            usage=Usage(
                input_tokens=field_of(usage, "prompt_tokens", int) or 0,
                output_tokens=field_of(usage, "completion_tokens", int) or 0,
            ),
            model=field_of(completion, "model", str) or model,
        )

    def _translate(self, err: Exception, model: str) -> Exception:
        log.warning("openai request failed: %s", scrub(f"{type(err).__name__}: {err}", [self._api_key]))
        return map_sdk_error(
            err,
            self._sdk,
            label="OpenAI API" if self._host == "api.openai.com" else "model server",
            key_env="OPENAI_API_KEY",
            model_env="ORCHESTRA_OPENAI_MODEL",
            model=model,
            host=self._host,
            timeout=self.timeout,
            max_retries=self.max_retries,
            secrets=[self._api_key],
        )

    async def aclose(self) -> None:
        await self._client.close()
