"""`orchestra` as people run it: a real process, a real SQLite file, the offline provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_PREFIXES = ("ORCHESTRA_", "ANTHROPIC_", "OPENAI_", "SLACK_", "DISCORD_")
SECRET = "sk-ant-api03-VERYSECRETVALUE123456"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No keys, no tokens, no stray ORCHESTRA_ settings: the offline provider and the terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PLATFORM_PREFIXES)}
    for key in ("NO_COLOR", "FORCE_COLOR"):
        env.pop(key, None)
    env["ORCHESTRA_DB"] = str(tmp_path / "memory.db")
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def orchestra(tmp_path: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m bot.cli ARGS` in tmp_path (so no stray .env is read)."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], cwd=tmp_path, env=env or clean_env(tmp_path),
        input=input, capture_output=True, text=True, encoding="utf-8", timeout=120,
    )


def investigate(tmp_path: Path, text: str, *more: str, env: dict[str, str] | None = None) -> dict:
    result = orchestra(tmp_path, "investigate", text, "--json", *more, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # one JSON object, nothing else on stdout


# --- investigate --------------------------------------------------------------------------------


def test_investigate_json_has_the_fields(tmp_path):
    report = investigate(tmp_path, "intermittent 401s on checkout after the Tuesday deploy", "--channel", "ops")
    for key in ("id", "status", "phase", "lead", "type", "title", "turns", "recalled"):
        assert key in report
    assert report["id"].startswith("inv-")
    assert report["channel"] == "ops" and report["platform"] == "local"
    assert report["title"].startswith("intermittent 401s on checkout")
    assert report["turns"], "at least one persona turn"
    for turn in report["turns"]:
        for key in ("seq", "persona", "mode", "confidence", "structured", "findings", "route"):
            assert key in turn
        assert turn["persona"] in {"cherry", "sophia", "karen"}
        assert turn["mode"] in {"researcher", "critic", "planner"}
        assert isinstance(turn["route"], dict) and "recalled" in turn["route"]
    assert report["turns"][0]["mode"] == "researcher"
    assert report["recalled"] == []  # a fresh channel remembers nothing


def test_investigate_twice_in_a_channel_recalls_the_first(tmp_path):
    first = investigate(tmp_path, "intermittent 401s on checkout", "--channel", "ops")
    second = investigate(tmp_path, "checkout 401s again after the deploy", "--channel", "ops")
    assert second["id"] != first["id"]
    assert second["recalled"], "the second investigation should draw on the first"
    assert {item["thread_id"] for item in second["recalled"]} == {first["id"]}
    assert all("401" in (item["title"] + item["excerpt"]) for item in second["recalled"])


def test_another_channel_recalls_nothing(tmp_path):
    investigate(tmp_path, "intermittent 401s on checkout", "--channel", "ops")
    other = investigate(tmp_path, "checkout 401s again after the deploy", "--channel", "sales")
    assert other["recalled"] == []


def test_investigate_with_a_persona_and_plain_output(tmp_path):
    report = investigate(tmp_path, "why did trial conversions drop", "--persona", "Karen")
    assert report["lead"] == "karen"
    result = orchestra(tmp_path, "investigate", "why did trial conversions drop", "--persona", "sophia")
    assert result.returncode == 0, result.stderr
    assert "Sophia" in result.stdout and "Offline rehearsal" in result.stdout
    assert "Investigation inv-" in result.stdout.splitlines()[-1]


def test_investigate_unknown_persona_exits_2(tmp_path):
    result = orchestra(tmp_path, "investigate", "anything", "--persona", "bob")
    assert result.returncode == 2
    assert "bob" in result.stderr and "sophia" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# --- personas -----------------------------------------------------------------------------------


def test_personas_list_and_show(tmp_path):
    listed = orchestra(tmp_path, "personas", "list")
    assert listed.returncode == 0, listed.stderr
    for name in ("Cherry", "Sophia", "Karen"):
        assert name in listed.stdout
    shown = orchestra(tmp_path, "personas", "show", "sophia")
    assert shown.returncode == 0
    assert "Sophia" in shown.stdout and "Traits:" in shown.stdout and "researcher" in shown.stdout
    assert not (tmp_path / "memory.db").exists(), "listing personas must not create the memory"


def test_personas_show_unknown_exits_2(tmp_path):
    result = orchestra(tmp_path, "personas", "show", "bob")
    assert result.returncode == 2
    assert "unknown persona 'bob'" in result.stderr
    assert "Traceback" not in result.stderr


def test_personas_from_a_bad_file_exit_2(tmp_path):
    bad = tmp_path / "personas.yaml"
    bad.write_text("sophia:\n  display_name: Sophia\n", encoding="utf-8")
    result = orchestra(tmp_path, "personas", "list", env=clean_env(tmp_path, ORCHESTRA_PERSONAS=str(bad)))
    assert result.returncode == 2
    assert "personas.yaml" in result.stderr and "sophia" in result.stderr
    assert "Traceback" not in result.stderr


# --- memory -------------------------------------------------------------------------------------


def test_memory_list_export_forget(tmp_path):
    first = investigate(tmp_path, "intermittent 401s on checkout", "--channel", "ops")
    listed = orchestra(tmp_path, "memory", "list", "--channel", "ops")
    assert listed.returncode == 0
    assert first["id"] in listed.stdout and "intermittent 401s" in listed.stdout

    exported = orchestra(tmp_path, "memory", "export", "--channel", "ops")
    assert exported.returncode == 0
    data = json.loads(exported.stdout)
    assert data["channel"] == "ops"
    assert [t["id"] for t in data["threads"]] == [first["id"]]

    refused = orchestra(tmp_path, "memory", "forget", "--channel", "ops", input="n\n")
    assert refused.returncode == 1
    assert first["id"] in orchestra(tmp_path, "memory", "list", "--channel", "ops").stdout

    confirmed = orchestra(tmp_path, "memory", "forget", "--channel", "ops", input="y\n")
    assert confirmed.returncode == 0 and "forgot 1 thread" in confirmed.stdout
    assert "remembers nothing" in orchestra(tmp_path, "memory", "list", "--channel", "ops").stdout


def test_memory_forget_yes_touches_only_that_channel(tmp_path):
    investigate(tmp_path, "intermittent 401s on checkout", "--channel", "ops")
    kept = investigate(tmp_path, "intermittent 401s on checkout", "--channel", "sales")
    result = orchestra(tmp_path, "memory", "forget", "--channel", "ops", "--yes")
    assert result.returncode == 0
    assert kept["id"] in orchestra(tmp_path, "memory", "list", "--channel", "sales").stdout


def test_memory_needs_a_channel(tmp_path):
    result = orchestra(tmp_path, "memory", "list")
    assert result.returncode == 2 and "--channel" in result.stderr


# --- bad settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"ORCHESTRA_PROVIDER": "foo"}, "ORCHESTRA_PROVIDER"),
        ({"ORCHESTRA_MAX_TURNS": "0"}, "ORCHESTRA_MAX_TURNS"),
        ({"ORCHESTRA_PROVDER": "openai"}, "ORCHESTRA_PROVDER"),
        ({"ORCHESTRA_CRITIC": "bob"}, "ORCHESTRA_CRITIC"),
    ],
)
@pytest.mark.parametrize("command", [["personas", "list"], ["investigate", "x", "--json"], []])
def test_bad_settings_exit_2_with_the_key_and_no_traceback(tmp_path, extra, key, command):
    env = clean_env(tmp_path, ANTHROPIC_API_KEY=SECRET, **extra)
    result = orchestra(tmp_path, *command, env=env, input="")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert key in result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert result.stdout == ""


def test_a_typo_gets_a_suggestion(tmp_path):
    result = orchestra(tmp_path, "personas", "list", env=clean_env(tmp_path, ORCHESTRA_PROVDER="openai"))
    assert "did you mean ORCHESTRA_PROVIDER" in result.stderr


def test_slack_http_without_credentials_exit_2(tmp_path):
    result = orchestra(tmp_path, "--slack-http", input="")
    assert result.returncode == 2
    assert "SLACK_SIGNING_SECRET" in result.stderr and "Traceback" not in result.stderr


# --- start-up -----------------------------------------------------------------------------------


def test_help_and_version(tmp_path):
    result = orchestra(tmp_path, "--help")
    assert result.returncode == 0
    for word in ("investigate", "personas", "memory", "--slack-http", "ANTHROPIC_API_KEY"):
        assert word in result.stdout
    version = orchestra(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("orchestra ")


def test_help_imports_only_the_standard_library(tmp_path):
    heavy = ["pydantic", "pydantic_settings", "aiosqlite", "anthropic", "openai", "slack_bolt", "slack_sdk", "yaml", "engine"]
    code = (
        "import sys\n"
        "from bot.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', [m for m in {heavy!r} if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "LOADED []"


def test_offline_commands_do_not_load_model_sdks_or_slack(tmp_path):
    code = (
        "import sys\n"
        "from bot.cli import main\n"
        "main(['personas', 'list'])\n"
        "print('LOADED', sorted(m for m in ('anthropic', 'openai', 'slack_bolt', 'httpx') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "LOADED []"


# Slack over HTTP as a real process, against the Slack stand-in: tests/test_startup.py
