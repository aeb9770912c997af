"""A persona's name must survive her source and be typeable: a line break or an invisible
character in it is refused with the field named (schemathesis found a NEL in a name that the
YAML file turned into a line break: the new persona could not be found, a 500)."""

from __future__ import annotations

from tests.api_resources_rig import defaults_copy, running_api
from tests.settings_env import clean_settings_env  # noqa: F401 - autouse: no settings from this machine


async def test_a_name_with_a_line_break_or_an_invisible_character_is_refused_field_by_field(tmp_path):
    path = defaults_copy(tmp_path)
    async with running_api(tmp_path, personas_file=path) as (_, client):
        for name in ("no\u0085va", "no\u2028va", "no\u200bva", "no\x07va"):
            r = await client.post("/api/personas", json={"name": name})
            assert r.status_code == 422, (name, r.text)
            assert [p["field"] for p in r.json()["error"]["details"]] == ["name"], r.text
        r = await client.patch("/api/personas/sophia", json={"display_name": "So\u0085phia"})
        assert r.status_code == 422, r.text
        r = await client.post("/api/personas", json={"name": "zoë"})
        assert r.status_code == 201, r.text
    assert "no\u0085va" not in path.read_text(encoding="utf-8")
