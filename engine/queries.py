"""What adapters and the CLI ask the engine outside of tasks: is this a thread we know, where
was there work lately (to catch up after a restart), what does this channel remember (list,
export, forget), who are the personas.

`Engine` inherits these, so adapters keep talking to one object; the task runner itself is in
`engine.engine`.
"""

from __future__ import annotations

from datetime import datetime

from engine.flows import EngineConfig
from engine.memory.records import ForgetResult, RecentPlace, ThreadSummary
from engine.personas import PersonaRegistry, describe_style, describe_traits


class EngineQueries:
    def __init__(self, memory, personas: PersonaRegistry, config: EngineConfig):
        self.memory = memory
        self.personas = personas
        self.config = config
        self._known_threads: dict[tuple[str, str, str, str], None] = {}

    async def is_known_thread(self, platform: str, workspace: str, channel: str, thread: str) -> bool:
        key = (platform, workspace, channel, thread)
        if key in self._known_threads:
            return True
        if await self.memory.find_thread(platform, workspace, channel, thread) is None:
            return False
        if len(self._known_threads) > 10_000:
            self._known_threads.pop(next(iter(self._known_threads)))
        self._known_threads[key] = None
        return True

    async def recent_places(self, platform: str, since: datetime, *, limit: int = 1000) -> list[RecentPlace]:
        """Where `platform` had work since `since`, most recently active first: what an adapter
        reads again after a restart when its platform does not resend what was missed."""
        return await self.memory.recent_places(platform, since, limit=limit)

    def expire_caches(self) -> int:
        """Forget which threads are known (retention may have removed some); how many were held."""
        held, self._known_threads = len(self._known_threads), {}
        return held

    async def memory_list(self, platform: str, workspace: str, channel: str) -> list[ThreadSummary]:
        return await self.memory.list_threads(platform, workspace, channel)

    async def memory_export(self, platform: str, workspace: str, channel: str) -> dict:
        return await self.memory.export_channel(platform, workspace, channel)

    async def memory_forget(self, platform: str, workspace: str, channel: str) -> ForgetResult:
        self._known_threads = {k: v for k, v in self._known_threads.items() if k[:3] != (platform, workspace, channel)}
        return await self.memory.forget_channel(platform, workspace, channel)

    def personas_overview(self) -> str:
        return "\n".join(
            f"{p.avatar.emoji_char} {p.display_name}: {p.role} (domains: {', '.join(p.domains[:4])})" for p in self.personas
        )

    def persona_card(self, name: str) -> str | None:
        p = self.personas.get(name)
        if p is None:
            return None
        t = p.traits
        traits = ", ".join(f"{k} {getattr(t, k):.2f}" for k in type(t).model_fields)
        cast = [mode for mode, who in self.config.cast.items() if who == p.name]
        return "\n".join([
            f"{p.avatar.emoji_char} {p.display_name}: {p.role}",
            p.backstory.strip(),
            f"Traits: {traits}",
            f"In prompts: {describe_traits(t)}",
            f"Style: humor {p.humor:.2f}, formality {p.formality:.2f}. {describe_style(p.humor, p.formality)}",
            f"Domains: {', '.join(p.domains) or 'general'}",
            f"Preferred modes: {', '.join(m.value for m in p.preferred_modes) or 'any'}"
            + (f" · speaks as {', '.join(cast)} in investigations" if cast else ""),
            f"Model: {p.model or 'the configured default'}",
        ])
