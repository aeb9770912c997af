"""`/metrics` through a real HTTP client against the running server: Prometheus text whose
counters move as the engine works (tasks, model calls with latency and tokens, turns, posts,
platform errors), fed through the engine's observer port."""

from __future__ import annotations


from prometheus_client.parser import text_string_to_metric_families

from adapters.api.metrics import attach
from engine.models import Task, TaskKind
from engine.observe import Observers
from engine.ports import ProviderUnavailable
from tests.api_resources_rig import running_api
from tests.fakes import FakeOutbox, ScriptedProvider, by_mode

from tests.settings_env import clean_settings_env  # noqa: F401 - autouse: no settings from this machine




async def scrape(client) -> dict[tuple[str, tuple], float]:
    r = await client.get("/metrics", headers={"authorization": ""})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def mention(text: str, n: int) -> Task:
    return Task(platform="test", workspace="W1", channel="C1", thread=f"t{n}", user="U1", text=text,
                event_id=f"e{n}", message_id=f"t{n}")


async def test_counters_move_after_tasks(tmp_path):
    provider = ScriptedProvider(fallback=by_mode)
    async with running_api(tmp_path, provider=provider) as (app, client):
        attach(app)
        outbox = FakeOutbox()
        app.engine.register_outbox("test", outbox)
        before = await scrape(client)
        assert value(before, "orchestra_tasks_accepted_total", platform="test", kind="message") == 0
        assert value(before, "orchestra_queue_depth") == 0

        await app.engine.run(mention("sophia, what is a token bucket?", 1))
        await app.engine.run(Task(platform="test", workspace="W1", channel="C1", user="U1", text="401s on checkout",
                                  event_id="e2", kind=TaskKind.INVESTIGATE, message_id="m2"))
        after = await scrape(client)
        assert value(after, "orchestra_tasks_accepted_total", platform="test", kind="message") == 1
        assert value(after, "orchestra_tasks_completed_total", platform="test", kind="message") == 1
        assert value(after, "orchestra_tasks_completed_total", platform="test", kind="investigate") == 1
        assert value(after, "orchestra_turns_total", mode="conversation") == 1
        assert value(after, "orchestra_turns_total", mode="researcher") >= 1
        assert value(after, "orchestra_model_calls_total", provider="scripted", persona="sophia", outcome="ok") >= 1
        assert value(after, "orchestra_model_tokens_total", provider="scripted", persona="sophia", direction="output") >= 5
        assert value(after, "orchestra_model_call_seconds_count", provider="scripted", persona="sophia") >= 1
        assert value(after, "orchestra_posts_total", platform="test") == len(outbox.posts)
        assert value(after, "orchestra_queue_depth") == 0 and value(after, "orchestra_lanes_busy") == 0

        # a model that fails, and a platform that refuses a post
        provider.fallback = lambda request: ProviderUnavailable("the model is down")
        outbox.fail_times = 1
        await app.engine.run(mention("cherry, plan the launch", 3))
        failed = await scrape(client)
        assert value(failed, "orchestra_tasks_failed_total", platform="test", kind="message") == 1
        assert value(failed, "orchestra_model_calls_total", provider="scripted", persona="cherry", outcome="error") == 1
        assert value(failed, "orchestra_platform_errors_total", platform="test") >= 1


async def test_an_observer_that_raises_never_disturbs_the_work():
    class Broken:
        def task_accepted(self, task):
            raise RuntimeError("boom")

    observers = Observers()
    observers.add(Broken())
    observers.task_accepted(mention("hi", 9))  # logged, not raised


async def test_work_done_before_the_first_scrape_is_counted(tmp_path):
    """The server counts from its start, not from the first time someone looks."""
    async with running_api(tmp_path, provider=ScriptedProvider(fallback=by_mode)) as (app, client):
        app.engine.register_outbox("test", FakeOutbox())
        await app.engine.run(mention("sophia, what is a token bucket?", 1))
        samples = await scrape(client)
        assert value(samples, "orchestra_tasks_accepted_total", platform="test", kind="message") == 1
