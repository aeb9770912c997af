"""`orchestra serve` as a person starts it: a real process, one port for the API, /health, /ready
and Slack's /slack/events; configuration mistakes stop it with exit 2."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.servers.slack_api import event_envelope, mention_event, signed_headers
from tests.test_startup import BOT_TOKEN, SIGNING_SECRET, clean_env, finished, free_port, read_until, slack, slack_env, start, stop  # noqa: F401

pytestmark = pytest.mark.asyncio

TOKEN = "serve-api-token-0123456789"


async def test_a_bad_api_setting_or_nothing_to_serve_stops_with_exit_2(tmp_path):
    code, _, err = await finished(tmp_path, "serve", env=clean_env(tmp_path, ORCHESTRA_API_READ_TOKEN="read-only-token-1"))
    assert code == 2 and "ORCHESTRA_API_READ_TOKEN is set but ORCHESTRA_API_TOKEN is not" in err and "Traceback" not in err
    code, _, err = await finished(tmp_path, "serve", env=clean_env(tmp_path))
    assert code == 2 and "orchestra serve has nothing to serve" in err and "ORCHESTRA_API_TOKEN" in err
    code, _, err = await finished(tmp_path, "serve", env=clean_env(tmp_path, ORCHESTRA_API_TOKEN=TOKEN, ORCHESTRA_API_MAX_BODY="lots"))
    assert code == 2 and "ORCHESTRA_API_MAX_BODY" in err and "Traceback" not in err


async def test_serve_answers_the_api_and_health_on_one_port_and_stops_on_sigterm(tmp_path):
    port = free_port()
    proc = await start(tmp_path, "serve", "--host", "127.0.0.1", "--port", str(port),
                       env=clean_env(tmp_path, ORCHESTRA_API_TOKEN=TOKEN))
    try:
        seen = await read_until(proc, r"^Serving on")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert (await client.get("/health")).text == "ok"
            assert (await client.get("/ready")).status_code == 200
            assert (await client.get("/api/tasks")).status_code == 401
            r = await client.post("/api/tasks", json={"text": "sophia, what is a retry storm?"},
                                  headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "k1"})
            assert r.status_code == 202, r.text
            for _ in range(100):
                task = (await client.get(f"/api/tasks/{r.json()['id']}", headers={"Authorization": f"Bearer {TOKEN}"})).json()
                if task["status"] == "done":
                    break
                await asyncio.sleep(0.1)
            assert task["status"] == "done" and task["replies"][0]["persona"] == "sophia"
    finally:
        code, out, err = await stop(proc)
    assert f"Serving on http://127.0.0.1:{port}" in seen and "Platforms: none" in seen
    assert code == 0 and "Traceback" not in err
    assert [line.split(": ", 1)[1] for line in err.splitlines()] == ["API: refused GET /api/tasks from 127.0.0.1 (no token)"]
    assert TOKEN not in seen + out + err


async def test_slack_events_reach_the_bot_through_the_serve_server(tmp_path, slack):  # noqa: F811
    port = free_port()
    env = slack_env(tmp_path, slack, SLACK_SIGNING_SECRET=SIGNING_SECRET, ORCHESTRA_API_TOKEN=TOKEN)
    del env["SLACK_APP_TOKEN"]  # HTTP mode only
    proc = await start(tmp_path, "serve", "--port", str(port), env=env)
    try:
        await read_until(proc, r"^Slack: connected")
        body = json.dumps(event_envelope(mention_event("sophia, are you there?", ts="1700000200.000001")))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            bad = await client.post("/slack/events", content=body, headers={
                **signed_headers("not-the-secret", body, content_type="application/json")})
            assert bad.status_code == 401
            malformed = "{not json"
            r = await client.post("/slack/events", content=malformed,
                                  headers=signed_headers(SIGNING_SECRET, malformed, content_type="application/json"))
            assert r.status_code == 400
            ok = await client.post("/slack/events", content=body, headers=signed_headers(SIGNING_SECRET, body, content_type="application/json"))
            assert ok.status_code == 200
            ready = (await client.get("/ready")).json()
            assert ready["checks"]["slack"] == "ok"
            assert (await client.get("/api/tasks", headers={"Authorization": f"Bearer {TOKEN}"})).json()["tasks"] == []
        for _ in range(100):
            if slack.posts():
                break
            await asyncio.sleep(0.1)
        assert [c["thread_ts"] for c in slack.posts()] == ["1700000200.000001"]
    finally:
        code, _, err = await stop(proc)
    assert code == 0 and BOT_TOKEN not in err
