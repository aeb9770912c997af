"""Tasks through the running API: submit (idempotent), read, list with a cursor, follow over SSE."""

from __future__ import annotations

import json

import pytest

from tests.api_rig import READ, auth, running_api

pytestmark = pytest.mark.asyncio


async def events_of(client, task_id: int) -> list[tuple[str, dict]]:
    events, name = [], None
    async with client.stream("GET", f"/api/tasks/{task_id}/events", headers=auth(READ)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


async def test_a_task_followed_to_completion_over_sse(tmp_path):
    async with running_api(tmp_path) as (client, _):
        r = await client.post("/api/tasks", json={"text": "why do checkout requests 401 at random?",
                                                  "kind": "investigation", "channel": "payments"}, headers=auth())
        assert r.status_code == 202, r.text
        task = r.json()
        assert task["status"] in ("accepted", "running", "done") and task["channel"] == "payments"
        events = await events_of(client, task["id"])
        names = [n for n, _ in events]
        assert names[-1] == "done" and names.count("done") == 1 and "reply" in names
        replies = [d for n, d in events if n == "reply"]
        assert all(d["persona"] and d["text"] for d in replies)
        final = events[-1][1]
        assert final["status"] == "done" and final["thread_id"].startswith("payments-") and len(final["replies"]) == len(replies)
        # subscribed late: the same story, replayed from the memory
        assert await events_of(client, task["id"]) == events
        got = (await client.get(f"/api/tasks/{task['id']}", headers=auth(READ))).json()
        assert got == final


async def test_a_retry_with_the_same_idempotency_key_returns_the_same_task(tmp_path):
    async with running_api(tmp_path) as (client, app):
        body = {"text": "sophia, what is a cache stampede?"}
        first = await client.post("/api/tasks", json=body, headers={**auth(), "Idempotency-Key": "abc-1"})
        again = await client.post("/api/tasks", json=body, headers={**auth(), "Idempotency-Key": "abc-1"})
        other = await client.post("/api/tasks", json=body, headers={**auth(), "Idempotency-Key": "abc-2"})
        reused = await client.post("/api/tasks", json={"text": "something else"}, headers={**auth(), "Idempotency-Key": "abc-1"})
        assert (first.status_code, again.status_code, other.status_code) == (202, 200, 202)
        assert first.json()["id"] == again.json()["id"] != other.json()["id"]
        assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
        await app.engine.wait_idle()
        listed = (await client.get("/api/tasks", headers=auth())).json()["tasks"]
        assert len(listed) == 2


async def test_api_memory_is_its_own_namespace(tmp_path):
    async with running_api(tmp_path) as (client, app):
        r = await client.post("/api/tasks", json={"text": "karen, review this", "channel": "general"}, headers=auth())
        await app.engine.wait_idle()
        assert await app.memory.export_channel("api", "api", "general") != await app.memory.export_channel("slack", "api", "general")
        stored = await app.memory.get_task(r.json()["id"])
        assert (stored.task.platform, stored.task.workspace, stored.task.channel) == ("api", "api", "general")


async def test_listing_filters_and_pages_with_a_cursor(tmp_path):
    async with running_api(tmp_path) as (client, app):
        ids = []
        for n in range(5):
            r = await client.post("/api/tasks", json={"text": f"question {n}", "channel": "a" if n % 2 else "b",
                                                      "persona": "karen" if n == 3 else None}, headers=auth())
            ids.append(r.json()["id"])
        await app.engine.wait_idle()
        seen, cursor = [], None
        while True:
            page = (await client.get("/api/tasks", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                                     headers=auth(READ))).json()
            seen += [t["id"] for t in page["tasks"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(ids, reverse=True)
        in_a = (await client.get("/api/tasks", params={"channel": "a"}, headers=auth())).json()["tasks"]
        assert [t["id"] for t in in_a] == [ids[3], ids[1]]
        done = (await client.get("/api/tasks", params={"status": "done", "persona": "karen"}, headers=auth())).json()["tasks"]
        assert ids[3] in [t["id"] for t in done]
        later = (await client.get("/api/tasks", params={"since": "2999-01-01T00:00:00Z"}, headers=auth())).json()
        assert later == {"tasks": [], "next_cursor": None}
        bad = await client.get("/api/tasks", params={"cursor": "not-ours"}, headers=auth())
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_cursor"
        missing = await client.get("/api/tasks/999999", headers=auth())
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        unknown = await client.post("/api/tasks", json={"text": "hi", "persona": "nobody"}, headers=auth())
        assert unknown.status_code == 422 and unknown.json()["error"]["details"][0]["field"] == "persona"


async def test_a_follow_up_in_the_thread_continues_the_conversation(tmp_path):
    async with running_api(tmp_path) as (client, app):
        first = (await client.post("/api/tasks", json={"text": "sophia, what is idempotency?"}, headers=auth())).json()
        await app.engine.wait_idle()
        done = (await client.get(f"/api/tasks/{first['id']}", headers=auth())).json()
        assert done["thread"] and done["thread_id"]
        second = (await client.post("/api/tasks", json={"text": "and why does it matter?", "thread": done["thread"]},
                                    headers=auth())).json()
        await app.engine.wait_idle()
        follow = (await client.get(f"/api/tasks/{second['id']}", headers=auth())).json()
        assert follow["thread_id"] == done["thread_id"] and follow["status"] == "done"


async def test_a_task_whose_model_fails_ends_its_stream_with_failed(tmp_path):
    from engine.ports import ProviderError
    from tests.fakes import ScriptedProvider, failing

    provider = ScriptedProvider(fallback=failing(ProviderError("The model is unreachable.")))
    async with running_api(tmp_path, provider=provider) as (client, _):
        r = await client.post("/api/tasks", json={"text": "sophia, anything?"}, headers=auth())
        events = await events_of(client, r.json()["id"])
        assert [n for n, _ in events] == ["failed"]
        assert events[0][1]["status"] == "failed" and "unreachable" in events[0][1]["error"]
