"""`/api/investigations` through a real HTTP client against the running server: investigations
run by the engine (offline provider) listed with filters and cursor pages, and one shown with
each turn's router scores and reasons, persona, mode, confidence, usage and timings."""

from __future__ import annotations

import itertools


from engine.models import Task, TaskKind
from tests.api_resources_rig import READ, running_api
from tests.fakes import FakeOutbox

from tests.settings_env import clean_settings_env  # noqa: F401 - autouse: no settings from this machine
_ids = itertools.count(1)




def investigate(text: str, channel: str = "C1") -> Task:
    n = next(_ids)
    return Task(platform="test", workspace="W1", channel=channel, user="U1", text=text, event_id=f"inv{n}",
                kind=TaskKind.INVESTIGATE, message_id=f"m{n}")


async def test_list_filter_and_page_through_investigations(tmp_path):
    async with running_api(tmp_path) as (app, client):
        app.engine.register_outbox("test", FakeOutbox())
        for text, channel in (("checkout 401s", "C1"), ("slow search", "C2"), ("cache misses", "C1")):
            await app.engine.run(investigate(text, channel))
        read = {"authorization": f"Bearer {READ}"}
        r = await client.get("/api/investigations", headers=read)
        assert r.status_code == 200, r.text
        assert [i["title"] for i in r.json()["investigations"]] == ["cache misses", "slow search", "checkout 401s"]
        assert r.json()["next_cursor"] is None

        r = await client.get("/api/investigations", params={"channel": "C1"})
        assert [i["title"] for i in r.json()["investigations"]] == ["cache misses", "checkout 401s"]
        r = await client.get("/api/investigations", params={"platform": "slack"})
        assert r.json()["investigations"] == []

        seen, cursor = [], None
        while True:
            r = await client.get("/api/investigations", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200
            seen += [i["id"] for i in r.json()["investigations"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 3 == len(set(seen))

        status = r.json()["investigations"][0]["status"]
        r = await client.get("/api/investigations", params={"status": status})
        assert len(r.json()["investigations"]) >= 1

        r = await client.get("/api/investigations", params={"cursor": "not-a-cursor"})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "cursor"
        r = await client.get("/api/investigations", params={"limit": 1000})
        assert r.status_code == 422
        r = await client.get("/api/investigations", headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401


async def test_show_an_investigation_with_why_each_turn_was_taken(tmp_path):
    async with running_api(tmp_path) as (app, client):
        app.engine.register_outbox("test", FakeOutbox())
        rec = await app.engine.run(investigate("intermittent 401s on checkout"))
        r = await client.get(f"/api/investigations/{rec.id}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == rec.id and body["title"] == "intermittent 401s on checkout"
        personas = [t for t in body["history"] if t["role"] == "persona"]
        assert personas, body
        first = personas[0]
        assert first["mode"] == "researcher"
        assert set(first["scores"]) >= {"researcher", "critic", "planner"}
        assert first["reasons"] and first["route"]["persona"] == first["author"]
        assert first["author"] in {"cherry", "sophia", "karen"}
        assert first["usage"]["output_tokens"] > 0 and first["seconds"] >= 0
        assert body["usage"]["output_tokens"] == sum(t["usage"]["output_tokens"] for t in body["history"])
        assert [t["seq"] for t in body["history"]] == sorted(t["seq"] for t in body["history"])

        r = await client.get("/api/investigations/nope-1")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
