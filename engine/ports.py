"""The engine's ports: what it needs from a model provider and from a chat platform.

Concrete providers live in `engine.providers`; concrete outboxes are the adapters. Tests give
each port a small in-memory fake.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from engine.models import PostedMessage, Reply, Voice


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant"]
    content: str


class ModelRequest(BaseModel):
    """One call to a model. `schema` asks for JSON matching it (native structured output)."""

    model_config = ConfigDict(frozen=True)

    system: str
    messages: list[ChatMessage]
    schema_name: str | None = None  # "researcher", "critic", "planner"; None: prose
    json_schema: dict[str, Any] | None = None
    temperature: float = 0.5
    max_tokens: int = 1500
    model: str | None = None  # the persona's preference; None: the provider's default


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0


class ModelResponse(BaseModel):
    """What came back. `text` is JSON text when a schema was asked for, prose otherwise."""

    model_config = ConfigDict(frozen=True)

    text: str
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    offline: bool = False  # the offline rehearsal provider made this


class ProviderError(Exception):
    """A model call failed in a way a person should hear about. `reason` is safe to show."""

    kind = "error"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ProviderTimeout(ProviderError):
    kind = "timeout"


class ProviderRateLimited(ProviderError):
    kind = "rate_limited"


class ProviderRefused(ProviderError):
    kind = "refused"


class ProviderUnavailable(ProviderError):
    """Connection failures, 5xx after the SDK's retries, authentication problems."""

    kind = "unavailable"


@runtime_checkable
class Provider(Protocol):
    name: str  # "anthropic", "openai", "offline"

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Call the model. Raises `ProviderError` subclasses, never SDK exceptions."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Outbox(Protocol):
    """A platform's way out: post a reply as its persona, and show that she is working.

    Every message carries its key where the platform can hold one (Slack: message metadata), so
    that after a crash between the platform taking a post and our record of it, `find_posted`
    can tell whether it went out.
    """

    async def post(self, reply: Reply, replace: str | None = None, resume: PostedMessage | None = None) -> PostedMessage:
        """Post the reply (split as the platform needs) and return the first message's id.

        `replace`: a placeholder's message id; its message becomes the reply's first part
        (a fresh post when it is gone). `resume`: the reply's first part, found on the platform
        after a restart (`find_posted`); post only the parts a crash kept from going out, and
        return it."""
        ...

    async def working(self, voice: Voice, channel: str, thread: str | None, key: str = "") -> str | None:
        """Show that `voice` is working in the thread. Returns the placeholder message's id when
        one was posted (to be replaced by `post(..., replace=id)`), None when nothing lasting
        was shown (a typing indicator, a printed line)."""
        ...

    async def find_posted(self, channel: str, thread: str | None, key: str) -> PostedMessage | None:
        """The message posted earlier with `key` (in `thread`, or at the channel's top level
        when None), if the platform has it; None when it cannot tell."""
        ...
