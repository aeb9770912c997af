"""`/api/personas` through a real HTTP client against the running server: the same service,
validation and active source (a real YAML file) as the CLI; every problem of an invalid persona
listed field by field; the read-only token refused on a write."""

from __future__ import annotations


import yaml

from tests.api_resources_rig import READ, defaults_copy, running_api

from tests.settings_env import clean_settings_env  # noqa: F401 - autouse: no settings from this machine




def names_in(path) -> list[str]:
    return list(yaml.safe_load(path.read_text(encoding="utf-8")))


async def test_list_and_show(tmp_path):
    async with running_api(tmp_path, personas_file=defaults_copy(tmp_path)) as (_, client):
        r = await client.get("/api/personas", headers={"authorization": f"Bearer {READ}"})
        assert r.status_code == 200
        body = r.json()
        assert {p["name"] for p in body["personas"]} == {"cherry", "sophia", "karen"}
        assert body["writable"] is True
        r = await client.get("/api/personas/Sophia")
        assert r.status_code == 200 and r.json()["display_name"] == "Sophia"
        r = await client.get("/api/personas/nobody")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
        assert "nobody" in r.json()["error"]["message"]


async def test_create_update_archive_write_the_file_and_the_running_bot_sees_them(tmp_path):
    path = defaults_copy(tmp_path)
    async with running_api(tmp_path, personas_file=path) as (app, client):
        r = await client.post("/api/personas", json={"name": "Nova", "role": "Analyst", "humor": 0.2,
                                                     "traits": {"openness": 0.9}, "domains": ["data", "sql"]})
        assert r.status_code == 201, r.text
        nova = r.json()["persona"]
        assert nova["name"] == "nova" and nova["role"] == "Analyst" and nova["traits"]["openness"] == 0.9
        assert "nova" in names_in(path)
        assert app.personas.get("nova") is not None  # in use at once

        r = await client.patch("/api/personas/nova", json={"formality": 0.9, "avatar": {"emoji_char": "✨"}})
        assert r.status_code == 200, r.text
        assert r.json()["persona"]["formality"] == 0.9 and r.json()["persona"]["avatar"]["emoji_char"] == "✨"
        assert r.json()["persona"]["humor"] == 0.2  # kept
        assert app.personas["nova"].formality == 0.9

        r = await client.post("/api/personas", json={"name": "nova"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "exists"

        r = await client.delete("/api/personas/nova")
        assert r.status_code == 200 and r.json()["archived"] == "nova"
        assert "nova" not in names_in(path)
        assert app.personas.get("nova") is None
        history = await app.memory.persona_changes("nova")
        assert [c.action for c in history] == ["create", "update", "archive"]
        assert {c.actor for c in history} == {"api"}
        r = await client.get("/api/personas/nova/history", headers={"authorization": f"Bearer {READ}"})
        assert r.status_code == 200
        assert [c["action"] for c in r.json()["changes"]] == ["create", "update", "archive"]
        assert r.json()["changes"][1]["changes"]["formality"][1] == 0.9
        assert (await client.get("/api/personas/nobody/history")).status_code == 404


async def test_an_invalid_persona_is_refused_with_every_problem_field_by_field(tmp_path):
    path = defaults_copy(tmp_path)
    before = path.read_text(encoding="utf-8")
    async with running_api(tmp_path, personas_file=path) as (_, client):
        r = await client.post("/api/personas", json={
            "name": "nova", "humor": 1.5, "color": "mauve-ish", "preferred_modes": ["researcher", "dancer"],
            "traits": {"openness": -1}, "template": "You are [nme]."})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        fields = {p["field"]: p["problem"] for p in error["details"]}
        assert set(fields) == {"humor", "color", "preferred_modes", "traits.openness", "template"}
        assert "0 to 1" in fields["humor"]
        assert "dancer" in fields["preferred_modes"]
        assert "[nme]" in fields["template"]
        assert all(p["in"] == "body" for p in error["details"])

        r = await client.patch("/api/personas/sophia", json={"humor": "lots", "display_name": "  "})
        assert r.status_code == 422
        fields = {p["field"] for p in r.json()["error"]["details"]}
        assert "humor" in fields

        r = await client.patch("/api/personas/sophia", json={"display_name": " ", "colour": "red"})
        assert r.status_code == 422
        assert "colour" in {p["field"] for p in r.json()["error"]["details"]}  # unknown field named

        r = await client.patch("/api/personas/sophia", json={"display_name": " "})
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["field"] == "display_name"
    assert path.read_text(encoding="utf-8") == before  # nothing written


async def test_refusals_the_read_token_the_cast_and_the_shipped_defaults(tmp_path):
    path = defaults_copy(tmp_path)
    async with running_api(tmp_path, personas_file=path) as (_, client):
        r = await client.patch("/api/personas/sophia", json={"humor": 0.1},
                               headers={"authorization": f"Bearer {READ}"})
        assert r.status_code == 403
        r = await client.delete("/api/personas/sophia")  # the researcher of the cast
        assert r.status_code == 409
        assert "ORCHESTRA_RESEARCHER" in r.json()["error"]["message"]
        r = await client.get("/api/personas", headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401
    (tmp_path / "defaults").mkdir()
    async with running_api(tmp_path / "defaults") as (_, client):
        r = await client.post("/api/personas", json={"name": "nova"})
        assert r.status_code == 409
        assert "orchestra personas init" in r.json()["error"]["message"]
