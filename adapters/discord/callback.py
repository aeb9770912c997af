"""An interaction's first answer in one plain POST, the acknowledgement's hot path.

Discord wants every interaction answered within 3 seconds, and a burst of slash commands makes
hundreds of those answers at once. Through `interaction.response.send_message` / `defer` each
answer asks for the created message back (`?with_response=1`), goes through discord.py's webhook
rate-limit lock, and is parsed into an `InteractionCallbackResponse` and a `Message` that nobody
reads: about half of what an acknowledgement costs the bot. The answer itself is one POST to
`/interactions/{id}/{token}/callback` (not rate limited per route, no Authorization needed), so
it goes out here on discord.py's own aiohttp session, to its own `Route.BASE` (DISCORD_API_URL),
and Discord answers 204. discord.py is then told that the interaction was answered, so that
`interaction.followup` and `response.is_done()` behave as after its own call.

What discord.py does better is kept: a 429 or a 5xx (Discord busy) is handed to discord.py's own
call, which waits and retries; any other refusal is raised as discord.py's `HTTPException`.
"""

from __future__ import annotations

from typing import Any

import discord
from discord.enums import InteractionResponseType
from discord.http import Route, json_or_text

#: Discord's interaction callback types (https://discord.com/developers/docs/interactions/receiving-and-responding).
MESSAGE = InteractionResponseType.channel_message.value  # 4: answered with a message
DEFERRED_MESSAGE = InteractionResponseType.deferred_channel_message.value  # 5: "thinking…"
DEFERRED_UPDATE = InteractionResponseType.deferred_message_update.value  # 6: a click taken, nothing shown
EPHEMERAL = 64


def message_data(content: str, *, ephemeral: bool = True) -> dict[str, Any]:
    """The `data` of a type-4 answer, which notifies nobody."""
    data: dict[str, Any] = {"content": content, "allowed_mentions": discord.AllowedMentions.none().to_dict()}
    if ephemeral:
        data["flags"] = EPHEMERAL
    return data


async def respond(interaction: discord.Interaction, kind: int, data: dict[str, Any] | None = None) -> None:
    """Answer `interaction` (callback type `kind`, with `data`) in one POST."""
    response = interaction.response
    if response.is_done():
        raise discord.InteractionResponded(interaction)
    http = interaction._state.http
    body: dict[str, Any] = {"type": kind}
    if data is not None:
        body["data"] = data
    url = f"{Route.BASE}/interactions/{interaction.id}/{interaction.token}/callback"
    async with interaction._session.post(
        url, data=discord.utils._to_json(body), headers={"Content-Type": "application/json"},
        proxy=http.proxy, proxy_auth=http.proxy_auth,
    ) as r:
        if 200 <= r.status < 300:
            response._response_type = InteractionResponseType(kind)
            return
        if r.status != 429 and r.status < 500:
            payload = await json_or_text(r)
            if r.status == 403:
                raise discord.Forbidden(r, payload)
            if r.status == 404:
                raise discord.NotFound(r, payload)
            raise discord.HTTPException(r, payload)
    await _through_discord_py(interaction, kind, data)  # busy: discord.py waits and retries


async def _through_discord_py(interaction: discord.Interaction, kind: int, data: dict[str, Any] | None) -> None:
    response = interaction.response
    data = data or {}
    ephemeral = bool(int(data.get("flags") or 0) & EPHEMERAL)
    if kind == MESSAGE:
        await response.send_message(data.get("content"), ephemeral=ephemeral,
                                    allowed_mentions=discord.AllowedMentions.none())
    elif kind == DEFERRED_MESSAGE:
        await response.defer(ephemeral=ephemeral, thinking=True)
    else:
        await response.defer()
