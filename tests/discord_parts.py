"""Minimal listeners and outbox for testing `adapters/discord/app.py` and the composition root on
their own, used ONLY while the real `adapters.discord.listeners` / `outbox` are not in the
branch: `ensure_parts()` does nothing once they are. Never imported by the package itself.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def ensure_parts() -> None:
    """Put the stand-ins in place of the listeners and the outbox, when the real ones are missing."""
    for name, cls in (("listeners", PlaceholderListeners), ("outbox", PlaceholderOutbox)):
        module = f"adapters.discord.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            fake = types.ModuleType(module)
            setattr(fake, cls.real_name, cls)
            fake.EnginePort = Any  # type: ignore[attr-defined]
            sys.modules[module] = fake


class PlaceholderOutbox:
    real_name = "DiscordOutbox"

    def __init__(self, client: Any, *args: Any, **kwargs: Any):
        self.client = client


class PlaceholderListeners:
    """Adds one command (so there is something to sync) and records messages."""

    real_name = "DiscordListeners"

    def __init__(self, engine: Any, settings: Any, outbox: Any):
        self.engine, self.settings, self.outbox = engine, settings, outbox
        self.messages: list[Any] = []

    def install(self, client: Any, tree: Any) -> None:
        from discord import app_commands

        @app_commands.command(name="personas", description="List the personas")
        async def personas(interaction: Any) -> None:  # pragma: no cover - never invoked here
            pass

        tree.add_command(personas)

    async def on_message(self, message: Any) -> None:
        self.messages.append(message)

    async def idle(self) -> None:
        pass
