"""`/api/crews` through a real HTTP client against the running server: a crew started as a
`crew` task on platform `api` (options checked by the crews' own rules, Idempotency-Key honoured)
and followed; a clear 501 with the install command when crewai is not importable."""

from __future__ import annotations

import sys

import pytest

from engine.models import TaskKind
from tests.api_resources_rig import READ, running_api
from tests.fakes import FakeOutbox

from tests.settings_env import clean_settings_env  # noqa: F401 - autouse: no settings from this machine




async def test_without_crewai_a_crew_gets_501_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "crewai", None)  # crewai hidden, as when the extra is not installed
    async with running_api(tmp_path) as (app, client):
        r = await client.post("/api/crews", json={"text": "grow the Q3 pipeline"})
        assert r.status_code == 501
        error = r.json()["error"]
        assert "pip install 'orchestra-personas[crew]'" in error["message"]
        assert error["code"] == "crew_not_installed"
        assert await app.memory.unfinished_tasks() == []  # nothing was stored


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("crewai") is None, reason="crewai not installed")
async def test_start_a_crew_and_follow_it(tmp_path):
    async with running_api(tmp_path) as (app, client):
        if "api" not in app.engine.poster.outboxes:
            app.engine.register_outbox("api", FakeOutbox())
        body = {"text": "grow the Q3 pipeline", "domain": "Sales", "complexity": "high", "persona": "Cherry",
                "channel": "ops"}
        r = await client.post("/api/crews", json=body, headers={"idempotency-key": "k1"})
        assert r.status_code == 202, r.text
        crew = r.json()
        assert crew["domain"] == "sales" and crew["complexity"] == "high" and crew["persona"] == "cherry"
        assert crew["task"] == f"/api/tasks/{crew['id']}"
        stored = await app.memory.get_task(crew["id"])
        assert stored.task.kind == TaskKind.CREW and stored.task.platform == "api" and stored.task.channel == "ops"
        assert stored.task.options == {"domain": "sales", "complexity": "high"}

        again = await client.post("/api/crews", json=body, headers={"idempotency-key": "k1"})
        assert again.status_code == 200 and again.json()["id"] == crew["id"]

        await app.engine.wait_idle()
        r = await client.get(f"/api/crews/{crew['id']}", headers={"authorization": f"Bearer {READ}"})
        assert r.status_code == 200 and r.json()["status"] in {"done", "failed"}
        assert isinstance(r.json()["replies"], list)
        assert (await client.get("/api/crews/999999")).status_code == 404

        r = await client.post("/api/crews", json={"text": "x", "domain": "astrology", "complexity": "extreme"})
        assert r.status_code == 422
        assert {p["field"] for p in r.json()["error"]["details"]} == {"domain", "complexity"}
        r = await client.post("/api/crews", json={"text": "x", "persona": "nobody"})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "persona"
        r = await client.post("/api/crews", json={"text": "x"}, headers={"authorization": f"Bearer {READ}"})
        assert r.status_code == 403
