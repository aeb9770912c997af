"""Personas exported and read back: JSON and SQL (executed for real in sqlite3) lose nothing."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import pytest

from engine.modes import Mode
from engine.personas import Persona, PersonaConfigError, PersonaRegistry
from engine.personas.export import (
    EXPORT_SCHEMA_VERSION,
    PERSONA_COLUMNS,
    TRAITS,
    PersonaExportError,
    PersonaImportError,
    export_json,
    import_json,
    sql_inserts,
    sql_schema,
)

LONG = ("Zoë's backstory — with 'quotes', \"double quotes\", back\\slashes, ; semicolons -- not a comment, "
        "/* nor this */, tabs\tand\nnewlines, emoji 🍒🧪 and CJK 漢字. ") * 400  # ~60 000 characters


def unusual_personas() -> list[Persona]:
    """Every field set, none to its default: what a lossy format would drop shows up here."""
    base = PersonaRegistry.defaults()["sophia"]
    return [
        Persona(
            name="zoë",
            display_name="Zoë O'Brien",
            role="Analyst; 'data' & \"numbers\"",
            backstory=LONG,
            traits={"openness": 0.123456789012345, "conscientiousness": 1.0, "extraversion": 0.0,
                    "agreeableness": 0.1 + 0.2, "neuroticism": 1e-9},
            humor=0.999999,
            formality=0.333,
            domains=["données", "SQL; DROP TABLE personas; --", "a'b", "🍒"],
            avatar={"emoji": ":zo\u00eb:", "emoji_char": "🧪", "url": "https://example.test/a.png?x='1'&y=2"},
            color="bright magenta",
            preferred_modes=[Mode.CRITIC, Mode.RESEARCHER, Mode.PLANNER],
            model="claude-test-1 'quoted'",
            template="You are [name] ([role]).\n[backstory]\n\n[traits] [style]\n[mode]\n[memory]\n[task] [domains] 'ok'",
        ),
        Persona(
            name="nul",  # the other extremes: empty lists, no url, no model, empty role
            display_name="N",
            role="",
            backstory="",
            traits={t: 0.5 for t in TRAITS},
            humor=0.0,
            formality=1.0,
            domains=[],
            avatar={"emoji": ":x:", "emoji_char": "x", "url": None},
            color="grey",
            preferred_modes=[],
            model=None,
            template="[task]",
        ),
        base,
    ]


def test_every_field_of_the_sample_differs_from_its_default():
    zoe = unusual_personas()[0]
    for field, info in Persona.model_fields.items():
        if not info.is_required():
            assert getattr(zoe, field) != info.get_default(call_default_factory=True), field


# --- JSON -------------------------------------------------------------------------------------------


def test_json_round_trip_is_lossless_on_every_field():
    personas = unusual_personas()
    text = export_json(personas)
    back = import_json(text)
    assert back == personas
    for before, after in zip(personas, back):
        assert after.model_dump() == before.model_dump()  # field by field, floats bit for bit


def test_json_is_versioned_and_readable():
    when = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    document = json.loads(export_json(unusual_personas(), exported_at=when))
    assert document["schema_version"] == EXPORT_SCHEMA_VERSION == 1
    assert document["exported_at"] == "2026-11-23T12:00:00+00:00"
    assert [p["name"] for p in document["personas"]] == ["zoë", "nul", "sophia"]
    assert "Zoë" in export_json(unusual_personas())  # UTF-8 as written, not \u escapes


def test_the_defaults_round_trip():
    defaults = list(PersonaRegistry.defaults())
    assert import_json(export_json(defaults)) == defaults


@pytest.mark.parametrize("text, expected", [
    ("not json at all", "not a JSON file (the problem is at line 1, column 1)"),
    ("", "not a JSON file"),
    ("[1, 2]", "not a persona export"),
    ('{"schema_version": 1}', "not a persona export"),
    ('{"schema_version": 2, "personas": []}', "schema_version 2 is not one this Orchestra reads (it reads: 1)"),
    ('{"personas": []}', "schema_version None is not one"),
    ('{"schema_version": true, "personas": []}', "schema_version True is not one"),
    ('{"schema_version": 1, "personas": []}', "personas: expected a non-empty list"),
])
def test_a_bad_file_is_refused_with_a_clear_line(text, expected):
    with pytest.raises(PersonaImportError) as caught:
        import_json(text, "team.json")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("team.json:")
    assert isinstance(caught.value, PersonaConfigError)  # the CLI answers it with exit 2


def test_a_bad_persona_is_named_with_its_field_and_all_problems_at_once():
    document = json.loads(export_json(unusual_personas()))
    document["personas"][0]["traits"]["openness"] = 1.5
    document["personas"][1]["colour"] = "red"  # unknown setting
    document["personas"][2]["template"] = "[task] [nope]"
    document["personas"].append(dict(document["personas"][2]))  # sophia twice
    with pytest.raises(PersonaImportError) as caught:
        import_json(json.dumps(document))
    problems = caught.value.problems
    assert any(p.startswith("zoë.traits.openness:") and "between 0 and 1" in p for p in problems)
    assert any(p.startswith("nul.colour: unknown setting; did you mean color?") for p in problems)
    assert any(p.startswith("sophia.template: unknown placeholder [nope]") for p in problems)
    assert any("already used by sophia" in p for p in problems)


# --- SQL --------------------------------------------------------------------------------------------


def read_back(db: sqlite3.Connection) -> list[Persona]:
    """What a reader of the SQL tables does to get the personas again."""
    db.row_factory = sqlite3.Row
    personas = []
    for row in db.execute("SELECT * FROM personas ORDER BY rowid"):
        name = row["name"]
        domains = [r[0] for r in db.execute("SELECT domain FROM persona_domains WHERE persona = ? ORDER BY seq", (name,))]
        modes = [r[0] for r in db.execute("SELECT mode FROM persona_modes WHERE persona = ? ORDER BY seq", (name,))]
        personas.append(Persona(
            name=name, display_name=row["display_name"], role=row["role"], backstory=row["backstory"],
            traits={t: row[t] for t in TRAITS}, humor=row["humor"], formality=row["formality"],
            domains=domains,
            avatar={"emoji": row["avatar_emoji"], "emoji_char": row["avatar_emoji_char"], "url": row["avatar_url"]},
            color=row["color"], preferred_modes=modes, model=row["model"], template=row["template"],
        ))
    return personas


def test_sql_round_trip_through_sqlite_is_lossless(tmp_path):
    personas = unusual_personas()
    db = sqlite3.connect(tmp_path / "personas.db")
    db.executescript(sql_schema("sqlite"))
    db.executescript(sql_inserts(personas, "sqlite"))
    assert read_back(db) == personas
    assert [r[0] for r in db.execute("PRAGMA table_info(personas)")] and \
        [r[1] for r in db.execute("PRAGMA table_info(personas)")] == list(PERSONA_COLUMNS)
    db.close()


def test_sqlite_schema_refuses_what_a_persona_cannot_be(tmp_path):
    db = sqlite3.connect(tmp_path / "personas.db")
    db.executescript(sql_schema("sqlite"))
    db.executescript(sql_inserts(unusual_personas()[2:], "sqlite"))
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE personas SET humor = 1.5")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO persona_modes (persona, seq, mode) VALUES ('sophia', 9, 'dreamer')")
    db.close()


def test_postgresql_text_is_the_postgresql_dialect():
    schema = sql_schema("postgresql")
    assert "DOUBLE PRECISION" in schema and "REAL" not in schema
    assert schema.count("CREATE TABLE") == 3
    inserts = sql_inserts(unusual_personas(), "postgresql")
    assert inserts.startswith("-- Orchestra personas (postgresql)")
    assert "'Zoë O''Brien'" in inserts  # standard strings: the quote doubled, nothing else escaped
    assert "E'" not in inserts and "\\'" not in inserts
    assert "back\\slashes" in inserts  # a backslash is itself (standard_conforming_strings)
    assert inserts.rstrip().endswith("COMMIT;")
    assert inserts.splitlines()[1] == "SET standard_conforming_strings = on;"  # whatever the server's setting
    # otherwise the same statements as SQLite's: both are standard SQL
    assert inserts.splitlines()[2:] == sql_inserts(unusual_personas(), "sqlite").splitlines()[1:]


def test_floats_are_written_exactly():
    inserts = sql_inserts(unusual_personas()[:1])
    assert repr(0.1 + 0.2) in inserts and "1e-09" in inserts and "0.123456789012345" in inserts


def test_unknown_dialect_and_nul_are_refused():
    with pytest.raises(ValueError, match="use one of: sqlite, postgresql"):
        sql_schema("mysql")
    nul = unusual_personas()[1].model_copy(update={"role": "a\x00b"})
    with pytest.raises(PersonaExportError, match=r"nul\.role: contains a NUL character"):
        sql_inserts([nul])
