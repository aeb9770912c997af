"""What a route needs from the running bot, taken from the ASGI app's state (set by `create_app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from bot.bootstrap import App


def orchestra(request: Request) -> "App":
    """The running application (engine, memory, personas, settings): a FastAPI dependency."""
    return request.app.state.orchestra
