"""What the engine tells an observer (metrics) as it works: a task accepted or finished, a model
call with its time and tokens, a turn, a post. The engine calls one line at each place; an
observer (e.g. the API's Prometheus metrics, `adapters.api.metrics`) is added to
`Engine.observers`. The engine never imports a metrics library, and an observer that raises
never disturbs the work (it is logged once and ignored).
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Protocol

from engine.models import Task
from engine.ports import ModelRequest, ModelResponse, Provider, ProviderError, Usage

log = logging.getLogger(__name__)

#: The persona whose turn is calling the model (set by `engine.turns`; each task runs in its own
#: asyncio task, so its own context): model calls are counted by persona without the provider
#: port knowing personas.
speaking: ContextVar[str | None] = ContextVar("speaking", default=None)


class Observer(Protocol):
    def task_accepted(self, task: Task) -> None: ...

    def task_finished(self, task: Task, status: str) -> None:
        """`status`: "done" or "failed"."""

    def model_call(self, provider: str, persona: str | None, seconds: float, usage: Usage | None, ok: bool) -> None: ...

    def turn(self, mode: str) -> None: ...

    def post(self, platform: str, ok: bool) -> None: ...


class Observers:
    """Every observer added, told in turn; none by default (then each call is a loop over nothing)."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []

    def add(self, observer: Observer) -> None:
        if observer not in self._observers:
            self._observers.append(observer)

    def _tell(self, method: str, *args) -> None:
        for observer in self._observers:
            try:
                getattr(observer, method)(*args)
            except Exception:
                log.warning("observer %r failed in %s", observer, method, exc_info=True)

    def task_accepted(self, task: Task) -> None:
        self._tell("task_accepted", task)

    def task_finished(self, task: Task, status: str) -> None:
        self._tell("task_finished", task, str(status))

    def model_call(self, provider: str, persona: str | None, seconds: float, usage: Usage | None, ok: bool) -> None:
        self._tell("model_call", provider, persona, seconds, usage, ok)

    def turn(self, mode: str) -> None:
        self._tell("turn", mode)

    def post(self, platform: str, ok: bool) -> None:
        self._tell("post", platform, ok)


class ObservedProvider:
    """The provider the flows call: the same provider, each call timed and told to `observers`."""

    def __init__(self, provider: Provider, observers: Observers):
        self.inner = provider
        self.observers = observers

    @property
    def name(self) -> str:
        return self.inner.name

    def __getattr__(self, attr: str):  # anything else a provider offers (tests' scripted ones)
        return getattr(self.inner, attr)

    async def generate(self, request: ModelRequest) -> ModelResponse:
        start = time.perf_counter()
        try:
            response = await self.inner.generate(request)
        except ProviderError:
            self.observers.model_call(self.inner.name, speaking.get(), time.perf_counter() - start, None, False)
            raise
        self.observers.model_call(self.inner.name, speaking.get(), time.perf_counter() - start, response.usage, True)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
