"""The API's door, error shape, health and readiness, through a real server and HTTP client."""

from __future__ import annotations

import logging

import pytest

from adapters.api.access import ApiTokens
from tests.api_rig import READ, WRITE, auth, running_api

pytestmark = pytest.mark.asyncio


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert "Traceback" not in response.text
    return body["error"]


async def test_without_a_token_configured_the_api_is_404_and_says_nothing_else(tmp_path):
    async with running_api(tmp_path, tokens=ApiTokens()) as (client, _):
        for path in ("/api/tasks", "/api/openapi.json", "/api/anything"):
            r = await client.get(path, headers=auth())
            assert r.status_code == 404 and error_of(r)["message"] == "Not found."
        r = await client.post("/api/tasks", json={"text": "hi"}, headers=auth())
        assert r.status_code == 404
        assert (await client.get("/health")).text == "ok"


async def test_a_missing_or_wrong_token_is_401_and_logged_without_the_token(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    async with running_api(tmp_path) as (client, _):
        missing = await client.get("/api/tasks")
        wrong = await client.get("/api/tasks", headers=auth("not-the-token-at-all"))
        unknown = await client.get("/api/nothing-here")  # no hint that a path exists without a token
        basic = await client.get("/api/tasks", headers={"Authorization": f"Basic {WRITE}"})
    for r in (missing, wrong, unknown, basic):
        assert r.status_code == 401 and "ORCHESTRA_API_TOKEN" in error_of(r)["message"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused GET /api/tasks" in logged and "not-the-token-at-all" not in logged and WRITE not in logged


async def test_the_read_token_reads_but_cannot_write(tmp_path):
    async with running_api(tmp_path) as (client, _):
        assert (await client.get("/api/tasks", headers=auth(READ))).status_code == 200
        r = await client.post("/api/tasks", json={"text": "hello"}, headers=auth(READ))
        assert r.status_code == 403 and error_of(r)["code"] == "read_only"
        assert (await client.get("/api/tasks", headers=auth(READ))).json()["tasks"] == []


async def test_bad_bodies_get_400_413_422_in_one_shape(tmp_path):
    async with running_api(tmp_path, max_body=2048) as (client, _):
        malformed = await client.post("/api/tasks", content=b'{"text": "hi",', headers={**auth(), "Content-Type": "application/json"})
        assert malformed.status_code == 400 and error_of(malformed)["code"] == "malformed_json"
        unknown = await client.post("/api/tasks", json={"text": "hi", "colour": "red"}, headers=auth())
        assert unknown.status_code == 422
        err = error_of(unknown)
        assert "colour" in err["message"] and err["details"] == [{"field": "colour", "in": "body", "problem": "unknown field: remove it"}]
        empty = await client.post("/api/tasks", json={"text": "   "}, headers=auth())
        assert empty.status_code == 422 and error_of(empty)["details"][0]["field"] == "text"
        big = await client.post("/api/tasks", json={"text": "x" * 5000}, headers=auth())
        assert big.status_code == 413 and error_of(big)["details"] == {"max_bytes": 2048}

        async def chunks():  # no Content-Length: counted as it arrives
            for _ in range(10):
                yield b" " * 1000
        chunked = await client.post("/api/tasks", content=chunks(), headers={**auth(), "Content-Type": "application/json"})
        assert chunked.status_code == 413
        wrong_method = await client.delete("/api/tasks", headers=auth())
        assert wrong_method.status_code == 405 and error_of(wrong_method)["code"] == "method_not_allowed"
        assert wrong_method.headers["allow"] == "GET, POST"
        bad_limit = await client.get("/api/tasks", params={"limit": 1000}, headers=auth())
        assert bad_limit.status_code == 422 and error_of(bad_limit)["details"][0]["field"] == "limit"


async def test_health_ready_and_the_openapi_document(tmp_path):
    async with running_api(tmp_path) as (client, app):
        assert (await client.get("/health")).text == "ok"
        ready = await client.get("/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "checks": {"database": "ok", "personas": "ok"}}
        doc = (await client.get("/api/openapi.json")).json()
        assert doc["openapi"].startswith("3.") and {"/api/tasks", "/api/tasks/{task_id}", "/api/tasks/{task_id}/events"} <= set(doc["paths"])
        await app.memory.close()  # the database goes away under a running server
        down = await client.get("/ready")
        assert down.status_code == 503 and down.json()["checks"]["database"] == "the database does not answer"


async def test_the_openapi_document_describes_errors_in_the_shape_they_are_sent(tmp_path):
    async with running_api(tmp_path) as (client, _):
        doc = (await client.get("/api/openapi.json")).json()
        post = doc["paths"]["/api/tasks"]["post"]["responses"]
        assert post["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert "4XX" in post and "HTTPValidationError" not in doc["components"]["schemas"]
        early = await client.get("/api/tasks", params={"since": "0001-01-01T00:00:00+05:00"}, headers=auth())
        assert early.status_code == 422 and error_of(early)["details"][0]["field"] == "since"
