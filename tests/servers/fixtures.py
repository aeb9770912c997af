"""Pytest fixtures: a started local API server per test. Use with
`pytest_plugins = ["tests.servers.fixtures"]` in a test module or conftest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.servers.anthropic_server import AnthropicServer
from tests.servers.discord_api import DiscordServer, local_discord
from tests.servers.notion_api import NotionServer
from tests.servers.openai_server import OpenAIServer


@pytest_asyncio.fixture
async def openai_server() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as server:
        yield server  # type: ignore[misc]


@pytest_asyncio.fixture
async def anthropic_server() -> AsyncIterator[AnthropicServer]:
    async with AnthropicServer() as server:
        yield server  # type: ignore[misc]


@pytest_asyncio.fixture
async def discord_server() -> AsyncIterator[DiscordServer]:
    """A local Discord with discord.py's Route.BASE and DEFAULT_GATEWAY pointed at it (restored
    after); a 200 ms heartbeat so heartbeats happen within a test. A bug in the stand-in itself
    (answered 503) fails the test at teardown."""
    async with local_discord(heartbeat_interval=200) as server:
        yield server  # type: ignore[misc]
    assert not server.errors, f"the local Discord failed while answering: {server.errors!r}"


@pytest_asyncio.fixture
async def notion_server() -> AsyncIterator[NotionServer]:
    """A local Notion (API 2025-09-03) accepting the token "secret_test_notion_token"."""
    async with NotionServer(token="secret_test_notion_token") as server:
        yield server  # type: ignore[misc]
