"""`/metrics` in Prometheus' text format (prometheus-client), fed by the engine's observer port
(`engine.observe`): the engine says what happened, this module counts it.

- tasks accepted, completed and failed, by platform and kind;
- model calls (by provider, persona and outcome), their latency (a histogram) and tokens;
- turns by mode; posts and platform errors by platform;
- queue depth (tasks accepted and not finished) and lanes busy, read at scrape time.

One registry per engine (not the process-global one), so two bots in one process (tests) never
mix their counts. `attach(app)` adds the observer; the composition root (or `create_app`) calls it
at start so nothing before the first scrape is missed; the route calls it too (idempotent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from adapters.api.context import orchestra
from engine.models import Task
from engine.ports import Usage

if TYPE_CHECKING:
    from bot.bootstrap import App
    from engine.engine import Engine

router = APIRouter(tags=["health"])

#: Model latency buckets, seconds: from a cached answer to a slow long plan.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 60, 120)


class Metrics:
    """The engine's observer, counting into its own registry."""

    def __init__(self, engine: Engine):
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.tasks_accepted = Counter("orchestra_tasks_accepted", "Tasks accepted (stored, deduplicated).",
                                      ["platform", "kind"], registry=registry)
        self.tasks_completed = Counter("orchestra_tasks_completed", "Tasks whose work finished.",
                                       ["platform", "kind"], registry=registry)
        self.tasks_failed = Counter("orchestra_tasks_failed", "Tasks that failed (a model or platform failure, reported in the thread).",
                                    ["platform", "kind"], registry=registry)
        self.model_calls = Counter("orchestra_model_calls", "Model calls, by outcome (ok or error).",
                                   ["provider", "persona", "outcome"], registry=registry)
        self.model_latency = Histogram("orchestra_model_call_seconds", "Time a model call took.",
                                       ["provider", "persona"], buckets=LATENCY_BUCKETS, registry=registry)
        self.model_tokens = Counter("orchestra_model_tokens", "Tokens in model calls, by direction (input or output).",
                                    ["provider", "persona", "direction"], registry=registry)
        self.turns = Counter("orchestra_turns", "Persona turns, by mode.", ["mode"], registry=registry)
        self.posts = Counter("orchestra_posts", "Posts made on a platform.", ["platform"], registry=registry)
        self.platform_errors = Counter("orchestra_platform_errors", "Posts a platform refused or failed.",
                                       ["platform"], registry=registry)
        queue = Gauge("orchestra_queue_depth", "Tasks accepted and not finished (waiting or running).",
                      registry=registry)
        queue.set_function(lambda: engine.in_flight)
        lanes = Gauge("orchestra_lanes_busy", "Threads with a turn running or waiting (one lane each).",
                      registry=registry)
        lanes.set_function(lambda: len(engine.lanes))

    # --- engine.observe.Observer -----------------------------------------------------------------

    def task_accepted(self, task: Task) -> None:
        self.tasks_accepted.labels(task.platform, task.kind.value).inc()

    def task_finished(self, task: Task, status: str) -> None:
        counter = self.tasks_completed if status == "done" else self.tasks_failed
        counter.labels(task.platform, task.kind.value).inc()

    def model_call(self, provider: str, persona: str | None, seconds: float, usage: Usage | None, ok: bool) -> None:
        who = persona or "none"
        self.model_calls.labels(provider, who, "ok" if ok else "error").inc()
        self.model_latency.labels(provider, who).observe(seconds)
        if usage is not None:
            self.model_tokens.labels(provider, who, "input").inc(usage.input_tokens)
            self.model_tokens.labels(provider, who, "output").inc(usage.output_tokens)

    def turn(self, mode: str) -> None:
        self.turns.labels(mode or "none").inc()

    def post(self, platform: str, ok: bool) -> None:
        (self.posts if ok else self.platform_errors).labels(platform).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


_attached: WeakKeyDictionary[Engine, Metrics] = WeakKeyDictionary()


def attach(app: App) -> Metrics:
    """The metrics of this bot's engine, created and added to its observers on first call."""
    metrics = _attached.get(app.engine)
    if metrics is None:
        metrics = _attached[app.engine] = Metrics(app.engine)
        app.engine.observers.add(metrics)
    return metrics


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}})
async def metrics(app=Depends(orchestra)) -> Response:
    """The counters, in Prometheus' text format (no token: scrapers have none; it names no secret)."""
    return Response(attach(app).text(), media_type=CONTENT_TYPE_LATEST)
