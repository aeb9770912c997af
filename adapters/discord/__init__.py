"""Orchestra on Discord (discord.py 2.x): mentions, DMs, thread follow-ups, slash commands, buttons,
persona voices through channel webhooks.

`DiscordAdapter` is imported lazily, so importing this package (or `orchestra --help`) does not
load discord.py. Wiring, from the composition root::

    from adapters.discord import DiscordAdapter

    discord_ = DiscordAdapter(settings, engine)
    engine.register_outbox("discord", discord_.outbox)
    await discord_.verify()              # log in: a refused DISCORD_TOKEN stops here
    await discord_.run()                 # until stop_receiving() / stop()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.discord.app import DiscordAdapter

__all__ = ["DiscordAdapter"]


def __getattr__(name: str) -> Any:
    if name == "DiscordAdapter":
        from adapters.discord.app import DiscordAdapter

        return DiscordAdapter
    raise AttributeError(f"module 'adapters.discord' has no attribute {name!r}")
