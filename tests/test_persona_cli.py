"""`orchestra personas export | import | schema` as people run them: real processes, real files."""

from __future__ import annotations

import json
import sqlite3

from engine.personas import PersonaRegistry
from engine.personas.export import export_json, import_json
from tests.test_cli import clean_env, orchestra
from tests.test_persona_export import read_back, unusual_personas


def run(tmp_path, *args, personas_file=None):
    extra = {"ORCHESTRA_PERSONAS": str(personas_file)} if personas_file else {}
    return orchestra(tmp_path, "personas", *args, env=clean_env(tmp_path, **extra))


def assert_refused(result, *words):
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
    for word in words:
        assert word in result.stderr


def test_export_import_export_through_a_yaml_file_loses_nothing(tmp_path):
    personas = unusual_personas()
    (tmp_path / "in.json").write_text(export_json(personas), encoding="utf-8")
    yaml_file = tmp_path / "team.yaml"

    imported = run(tmp_path, "import", "in.json", personas_file=yaml_file)
    assert imported.returncode == 0, imported.stderr
    assert "Imported 3 persona(s)" in imported.stdout and "new: zoë, nul, sophia" in imported.stdout
    assert list(PersonaRegistry.from_yaml(yaml_file)) == personas  # the file the bot loads

    exported = run(tmp_path, "export", "out.json", personas_file=yaml_file)
    assert exported.returncode == 0, exported.stderr
    assert "Exported 3 persona(s) to out.json as JSON" in exported.stdout
    document = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert document["schema_version"] == 1 and document["exported_at"]
    assert import_json((tmp_path / "out.json").read_text(encoding="utf-8")) == personas

    again = run(tmp_path, "import", "out.json", personas_file=yaml_file)
    assert again.returncode == 0 and "unchanged: zoë, nul, sophia" in again.stdout
    assert "comments" not in again.stderr  # its own header is not a comment someone wrote


def test_export_the_shipped_personas_to_standard_output(tmp_path):
    result = run(tmp_path, "export", "-")
    assert result.returncode == 0, result.stderr
    assert import_json(result.stdout) == list(PersonaRegistry.defaults())
    assert not (tmp_path / "memory.db").exists(), "exporting personas must not create the memory"


def test_import_updates_by_name_and_keeps_the_others(tmp_path):
    yaml_file = tmp_path / "team.yaml"
    (tmp_path / "defaults.json").write_text(export_json(PersonaRegistry.defaults()), encoding="utf-8")
    assert run(tmp_path, "import", "defaults.json", personas_file=yaml_file).returncode == 0
    sophia = PersonaRegistry.defaults()["sophia"]
    changed = sophia.model_copy(update={"role": "Chief analyst", "humor": 0.9})
    newcomer = unusual_personas()[0]
    (tmp_path / "more.json").write_text(export_json([changed, newcomer]), encoding="utf-8")

    result = run(tmp_path, "import", "more.json", personas_file=yaml_file)
    assert result.returncode == 0, result.stderr
    assert "new: zoë" in result.stdout and "updated: sophia (role, humor)" in result.stdout
    loaded = PersonaRegistry.from_yaml(yaml_file)
    assert loaded.names == ["cherry", "sophia", "karen", "zoë"]
    assert loaded["sophia"] == changed and loaded["cherry"] == PersonaRegistry.defaults()["cherry"]


def test_a_bad_file_exits_2_with_a_clear_line_and_writes_nothing(tmp_path):
    yaml_file = tmp_path / "team.yaml"
    (tmp_path / "defaults.json").write_text(export_json(PersonaRegistry.defaults()), encoding="utf-8")
    assert run(tmp_path, "import", "defaults.json", personas_file=yaml_file).returncode == 0
    before = yaml_file.read_bytes()

    (tmp_path / "notjson.json").write_text("{ this is not json", encoding="utf-8")
    assert_refused(run(tmp_path, "import", "notjson.json", personas_file=yaml_file),
                   "notjson.json", "not a JSON file", "orchestra personas export FILE")

    (tmp_path / "future.json").write_text('{"schema_version": 7, "personas": [{}]}', encoding="utf-8")
    assert_refused(run(tmp_path, "import", "future.json", personas_file=yaml_file),
                   "schema_version 7 is not one this Orchestra reads (it reads: 1)")

    document = json.loads(export_json(unusual_personas()))
    document["personas"][0]["traits"]["openness"] = 3  # the first is fine elsewhere; nothing is written
    document["personas"][2]["preferred_modes"] = ["dreamer"]
    (tmp_path / "invalid.json").write_text(json.dumps(document), encoding="utf-8")
    assert_refused(run(tmp_path, "import", "invalid.json", personas_file=yaml_file),
                   "zoë.traits.openness", "between 0 and 1", "sophia.preferred_modes")

    clash = unusual_personas()[1].model_copy(update={"name": "cher", "display_name": "Cherry"})
    (tmp_path / "clash.json").write_text(export_json([clash]), encoding="utf-8")
    assert_refused(run(tmp_path, "import", "clash.json", personas_file=yaml_file), "'cherry' is already used")

    assert_refused(run(tmp_path, "import", "missing.json", personas_file=yaml_file), "cannot read missing.json")
    assert yaml_file.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_import_into_a_broken_persona_file_says_so_and_writes_nothing(tmp_path):
    broken = tmp_path / "team.yaml"
    broken.write_text("# ours\nsophia:\n  role: [unclosed\n", encoding="utf-8")
    before = broken.read_bytes()
    (tmp_path / "defaults.json").write_text(export_json(PersonaRegistry.defaults()), encoding="utf-8")
    assert_refused(run(tmp_path, "import", "defaults.json", personas_file=broken), "team.yaml", "not valid YAML at line")
    assert broken.read_bytes() == before


def test_import_without_a_persona_file_names_the_setting(tmp_path):
    (tmp_path / "defaults.json").write_text(export_json(PersonaRegistry.defaults()), encoding="utf-8")
    assert_refused(run(tmp_path, "import", "defaults.json"), "ORCHESTRA_PERSONAS is not set", "personas.yaml")


def test_export_sql_runs_in_sqlite_with_the_printed_schema(tmp_path):
    personas = unusual_personas()
    (tmp_path / "in.json").write_text(export_json(personas), encoding="utf-8")
    yaml_file = tmp_path / "team.yaml"
    assert run(tmp_path, "import", "in.json", personas_file=yaml_file).returncode == 0

    schema = run(tmp_path, "schema")
    assert schema.returncode == 0 and "CREATE TABLE personas" in schema.stdout
    inserts = run(tmp_path, "export", "team.sql", "--sql", personas_file=yaml_file)
    assert inserts.returncode == 0 and "as SQL INSERT statements (sqlite)" in inserts.stdout
    db = sqlite3.connect(tmp_path / "copy.db")
    db.executescript(schema.stdout)
    db.executescript((tmp_path / "team.sql").read_text(encoding="utf-8"))
    assert read_back(db) == personas
    db.close()


def test_postgresql_dialect_from_the_command_line(tmp_path):
    schema = run(tmp_path, "schema", "--dialect", "postgresql")
    assert schema.returncode == 0 and "DOUBLE PRECISION" in schema.stdout and "REAL" not in schema.stdout
    inserts = run(tmp_path, "export", "-", "--sql", "--dialect", "postgresql")
    assert inserts.returncode == 0 and inserts.stdout.startswith("-- Orchestra personas (postgresql)")
    assert_refused(run(tmp_path, "export", "x.json", "--dialect", "postgresql"), "--dialect goes with --sql")
    assert not (tmp_path / "x.json").exists()
    bad = run(tmp_path, "schema", "--dialect", "mysql")
    assert bad.returncode == 2 and "invalid choice: 'mysql'" in bad.stderr


def test_import_writes_through_a_symlink_and_keeps_the_file_mode(tmp_path):
    real = tmp_path / "config" / "personas.yaml"
    real.parent.mkdir()
    (tmp_path / "defaults.json").write_text(export_json(PersonaRegistry.defaults()), encoding="utf-8")
    assert run(tmp_path, "import", "defaults.json", personas_file=real).returncode == 0
    real.chmod(0o640)
    link = tmp_path / "personas.yaml"
    link.symlink_to(real)
    (tmp_path / "one.json").write_text(export_json(unusual_personas()[:1]), encoding="utf-8")

    result = run(tmp_path, "import", "one.json", personas_file=link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and PersonaRegistry.from_yaml(real).names == ["cherry", "sophia", "karen", "zoë"]
    assert real.stat().st_mode & 0o777 == 0o640
