"""The tools a crew's agents get: real ones over this channel's memory, nothing invented.

- `channel_memory`: what this channel remembers about a query (the engine's recall: earlier
  investigations, conversations and crews, ranked by relevance and recency);
- `thread_history`: what has been said in this thread so far.

Agents run in crewai's worker thread; the memory lives on the event loop. Each tool call is
handed to the loop (`run_coroutine_threadsafe`) and waited for, so SQLite is only ever used from
the loop. crewai's tool class is built in the worker thread (`crewai_tools`), never on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.context import history_text, memory_text

TOOL_TIMEOUT = 30.0


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    run: Callable[[str], str]  # called from crewai's thread


class ChannelTools:
    """This channel's memory and this thread's history, for one crew."""

    def __init__(self, memory, loop: asyncio.AbstractEventLoop, *, platform: str, workspace: str, channel: str,
                 thread_ids: list[str], exclude: str | None, limit: int = 5, budget_tokens: int = 1500):
        self.memory, self.loop = memory, loop
        self.where = (platform, workspace, channel)
        self.thread_ids = thread_ids  # the crew's own record, and the investigation it came from
        self.exclude, self.limit, self.budget = exclude, limit, budget_tokens

    def _wait(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TOOL_TIMEOUT)

    def channel_memory(self, query: str) -> str:
        found = self._wait(self.memory.recall(*self.where, str(query or "")[:500], exclude_thread=self.exclude,
                                              limit=self.limit))
        return memory_text(found, self.budget) if found else "This channel remembers nothing about that yet."

    def thread_history(self, _: str = "") -> str:
        parts = []
        for thread_id in self.thread_ids:
            turns = self._wait(self.memory.turns(thread_id))
            if turns:
                parts.append(history_text(turns, self.budget))
        return "\n\n".join(parts) or "Nothing has been said in this thread yet."

    def specs(self) -> list[ToolSpec]:
        return [
            ToolSpec("channel_memory", "Search what this channel remembers (earlier investigations, conversations "
                     "and crews). Input: a short search query.", self.channel_memory),
            ToolSpec("thread_history", "Read what has been said in this thread so far. Input: anything (ignored).",
                     self.thread_history),
        ]


def crewai_tools(specs: list[ToolSpec]) -> list[Any]:
    """crewai tool objects for the specs (imports crewai: call it in the worker thread)."""
    from crewai.tools import BaseTool
    from pydantic import BaseModel, Field

    class Query(BaseModel):
        query: str = Field("", description="what to look for")

    tools = []
    for spec in specs:
        class SpecTool(BaseTool):
            args_schema: type[BaseModel] = Query

            def _run(self, query: str = "", _spec=spec) -> str:
                return _spec.run(query)

        tools.append(SpecTool(name=spec.name, description=spec.description))
    return tools
