"""Model providers: the `Provider` port over Anthropic, OpenAI (and compatible local servers),
and the offline rehearsal.

Importing this package is cheap: the SDKs (about 2 s for anthropic, 1 s for openai) are imported
only when a provider that needs one is built.
"""

from __future__ import annotations

from typing import Literal

from engine.ports import Provider
from engine.providers.anthropic_provider import AnthropicProvider
from engine.providers.limit import CallLimit
from engine.providers.offline import OfflineProvider
from engine.providers.openai_provider import OpenAIProvider, StructuredLevel

ProviderKind = Literal["anthropic", "openai", "offline"]


def build_provider(
    kind: str,
    *,
    anthropic_api_key: str | None = None,
    anthropic_base_url: str | None = None,
    anthropic_model: str = "claude-sonnet-5-5",
    openai_api_key: str | None = None,
    openai_base_url: str | None = None,
    openai_model: str = "gpt-5.4-mini",
    timeout: float = 60.0,
    max_retries: int = 2,
    max_connections: int | None = None,
) -> Provider:
    """The provider for `kind`, from plain values (the composition root unwraps its secrets)."""
    if kind == "anthropic":
        return AnthropicProvider(
            api_key=anthropic_api_key,
            base_url=anthropic_base_url,
            model=anthropic_model,
            timeout=timeout,
            max_retries=max_retries,
            max_connections=max_connections,
        )
    if kind == "openai":
        return OpenAIProvider(
            api_key=openai_api_key,
            base_url=openai_base_url,
            model=openai_model,
            timeout=timeout,
            max_retries=max_retries,
            max_connections=max_connections,
        )
    if kind == "offline":
        return OfflineProvider()
    raise ValueError(f"unknown provider {kind!r}: use anthropic, openai or offline")


__all__ = [
    "AnthropicProvider",
    "CallLimit",
    "OfflineProvider",
    "OpenAIProvider",
    "ProviderKind",
    "StructuredLevel",
    "build_provider",
]
