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
PLATFORM_PREFIXES = ("ORCHESTRA_", "ANTHROPIC_", "OPENAI_", "SLACK_", "DISCORD_", "NOTION_")
SECRET = "sk-ant-api03-VERYSECRETVALUE123456"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No keys, no tokens, no stray ORCHESTRA_ settings: the offline provider and the terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PLATFORM_PREFIXES)}
    for key in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES"):  # wrapping: only where a test asks
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
    assert report["id"] == "ops-1"  # the first investigation in #ops
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


def test_investigate_json_with_a_named_lead_offline(tmp_path):
    """What a person sees: Karen leads, someone else challenges her, her evidence is whole, and the
    second run recalls what people said, not the rehearsal's canned findings."""
    first = investigate(tmp_path, "karen checkout fails since 00:00 UTC: the gateway returns 502", "--channel", "ops")
    turns = first["turns"]
    assert (turns[0]["persona"], turns[0]["mode"]) == ("karen", "researcher")
    critics = [t for t in turns if t["mode"] == "critic"]
    assert critics and all(t["persona"] != "karen" for t in critics)
    assert "wrote the finding under challenge" in critics[0]["route"]["persona_reason"]
    claims = [e["claim"] for e in turns[0]["findings"]["evidence"]]
    assert "checkout fails since 00:00 UTC: the gateway returns 502" in claims
    assert first["status"] == "complete" and turns[-1]["mode"] == "planner"

    second = investigate(tmp_path, "is the 502 from the gateway back?", "--channel", "ops")
    assert second["recalled"] and all(r["author"] not in ("sophia", "karen", "cherry") for r in second["recalled"])
    assert not any("rehearsal" in r["excerpt"].lower() for r in second["recalled"])


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
    assert "Investigation terminal-2 · " in result.stdout.splitlines()[-2]


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


BAD_PERSONAS = """\
sophia:
  display_name: Sophia
  role: researcher
  backstory: Reads everything.
  traits: {openness: 1.5, conscientiousness: 0.5, extraversion: 0.5, agreeableness: 0.5, neuroticism: -0.2}
  humor: 0.2
  formality: 0.9
  color: blu
  template: "Hi [name], [nmae]"
sophia:
  display_name: Sophie
karen:
  display_name: Sophia
~:
  role: nobody
"""


@pytest.mark.parametrize("command", [["personas", "list"], []])
def test_every_persona_file_problem_is_reported_at_once(tmp_path, command):
    bad = tmp_path / "personas.yaml"
    bad.write_text(BAD_PERSONAS, encoding="utf-8")
    result = orchestra(tmp_path, *command, env=clean_env(tmp_path, ORCHESTRA_PERSONAS=str(bad)), input="")
    assert result.returncode == 2, result.stdout
    err = result.stderr
    for expected in (
        "sophia.traits.openness: 1.5 is out of range",  # trait ranges, each of them
        "sophia.traits.neuroticism: -0.2 is out of range",
        "sophia.color: unknown colour 'blu'; did you mean blue?",  # colours
        "sophia.template: unknown placeholder [nmae]",  # placeholders, even beside other problems
        "sophia (line 10): the name 'sophia' is already used by sophia",  # a repeated key PyYAML would drop
        "sophia (line 10).role: missing",  # ...whose entry is checked too
        "karen: the name 'sophia' is already used by sophia",  # duplicate names
        "entry 4: the persona has no name",  # missing names
    ):
        assert expected in err, expected
    assert "Traceback" not in err and result.stdout == ""


def test_a_persona_file_that_is_not_yaml_says_where(tmp_path):
    bad = tmp_path / "personas.yaml"
    bad.write_text("sophia:\n  traits: [0.5,\n  role: x\n", encoding="utf-8")
    result = orchestra(tmp_path, "personas", "list", env=clean_env(tmp_path, ORCHESTRA_PERSONAS=str(bad)))
    assert result.returncode == 2 and "not valid YAML at line" in result.stderr and "Traceback" not in result.stderr


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


def test_memory_and_investigate_share_the_default_channel(tmp_path):
    report = investigate(tmp_path, "intermittent 401s on checkout")
    assert report["channel"] == "terminal" and report["id"] == "terminal-1"
    listed = orchestra(tmp_path, "memory", "list")
    assert listed.returncode == 0, listed.stderr
    assert "terminal-1" in listed.stdout
    exported = json.loads(orchestra(tmp_path, "memory", "export").stdout)
    assert [t["id"] for t in exported["threads"]] == ["terminal-1"]
    before = orchestra(tmp_path, "--channel", "#terminal", "memory", "list")  # given before the command
    assert "terminal-1" in before.stdout
    assert orchestra(tmp_path, "memory", "forget", "--yes").returncode == 0
    assert "remembers nothing" in orchestra(tmp_path, "memory", "list").stdout


@pytest.mark.parametrize("spelling", ["#payments", "payments", " #payments ", "#\u200bpayments"])
def test_a_channel_is_the_same_with_or_without_hash(tmp_path, spelling):
    first = investigate(tmp_path, "intermittent 401s on checkout", "--channel", spelling)
    assert first["channel"] == "payments" and first["id"] == "payments-1"
    second = investigate(tmp_path, "checkout 401s again", "--channel", "payments")
    assert second["id"] == "payments-2" and {r["thread_id"] for r in second["recalled"]} == {"payments-1"}
    for command in (["list"], ["export"]):
        out = orchestra(tmp_path, "memory", *command, "--channel", spelling).stdout
        assert "payments-1" in out and "payments-2" in out
    forgot = orchestra(tmp_path, "memory", "forget", "--channel", spelling, "--yes")
    assert forgot.returncode == 0 and "forgot 2 thread" in forgot.stdout
    assert "remembers nothing" in orchestra(tmp_path, "memory", "list", "--channel", "payments").stdout


def test_an_empty_channel_is_a_usage_error(tmp_path):
    for args in (["investigate", "x", "--channel", "#"], ["memory", "list", "--channel", " "], ["--channel", "", "memory", "list"]):
        result = orchestra(tmp_path, *args)
        assert result.returncode == 2, args
        assert "--channel payments" in result.stderr and "Traceback" not in result.stderr


def test_ids_survive_forget_and_never_point_at_new_work(tmp_path):
    first = investigate(tmp_path, "intermittent 401s on checkout", "--channel", "payments")
    assert orchestra(tmp_path, "memory", "forget", "--channel", "payments", "--yes").returncode == 0
    again = investigate(tmp_path, "intermittent 401s on checkout", "--channel", "payments")
    assert (first["id"], again["id"]) == ("payments-1", "payments-2")
    gone = orchestra(tmp_path, "reply", "payments-1", "more")
    assert gone.returncode == 2 and "payments-1" in gone.stderr


# --- empty and invisible text ---------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\u200b\u200d\ufeff", "\u2066\u2069 \u00ad"])
def test_investigate_without_text_is_a_usage_error(tmp_path, text):
    result = orchestra(tmp_path, "investigate", text)
    assert result.returncode == 2
    assert "say what to investigate" in result.stderr and 'orchestra investigate "' in result.stderr
    assert "Ask me something" not in result.stdout + result.stderr  # not the chat's help
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert not (tmp_path / "memory.db").exists()


def test_investigate_only_a_persona_or_an_unknown_one_is_a_usage_error(tmp_path):
    named = orchestra(tmp_path, "investigate", "so\u200bphia")
    assert named.returncode == 2 and "after Sophia's name" in named.stderr and named.stdout == ""
    unknown = orchestra(tmp_path, "investigate", "@bob why did it fail")
    assert unknown.returncode == 2 and "'bob'" in unknown.stderr and "sophia" in unknown.stderr


def test_invisible_characters_do_not_hide_a_persona(tmp_path):
    report = investigate(tmp_path, "@so\u200bphia why did trial conversions drop")
    assert report["lead"] == "sophia"
    report = investigate(tmp_path, "Ka\u200dren: why did trial conversions drop")
    assert report["lead"] == "karen" and report["title"] == "why did trial conversions drop"
    report = investigate(tmp_path, "why did trial conversions drop", "--persona", "@so\u200bphia")
    assert report["lead"] == "sophia"
    shown = orchestra(tmp_path, "personas", "show", "kar\u200ben")
    assert shown.returncode == 0 and "Karen" in shown.stdout


def test_invisible_characters_in_the_terminal_chat(tmp_path):
    lines = "@so\u200bphia hi there\nKa\u200dren: pricing for 👩\u200d💻 teams?\n\u200b\u200d\n/quit\n"
    result = orchestra(tmp_path, input=lines)
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("you › ")
    assert "Sophia" in blocks[1] and "don't know a persona" not in blocks[1]
    assert "Karen" in blocks[2]
    assert "Ask me something" in blocks[3]  # only invisible characters: the empty-message hint
    export = json.loads(orchestra(tmp_path, "memory", "export").stdout)
    human = [t["text"] for th in export["threads"] for t in th["turns"] if t["role"] == "human"]
    assert "Ka\u200dren: pricing for 👩\u200d💻 teams?" in human  # kept whole
    titles = [th["title"] for th in export["threads"]]
    assert "pricing for 👩\u200d💻 teams?" in titles  # the emoji keeps its joiner


# --- continuing an investigation ------------------------------------------------------------------


def test_one_shot_output_offers_only_what_the_shell_can_do(tmp_path):
    env = clean_env(tmp_path, ORCHESTRA_MAX_AUTO_TURNS="1")
    result = orchestra(tmp_path, "investigate", "intermittent 401s on checkout", "--channel", "payments", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "investigation payments-1" in out
    assert "/challenge" not in out and "/plan" not in out and "→" not in out
    assert "reply in this thread" not in out.lower() and "reply here" not in out.lower()
    assert "pausing here" in out  # the notice itself is kept
    assert out.splitlines()[-1] == ('Continue: orchestra reply payments-1 "…" · orchestra challenge payments-1 · '
                                    "orchestra plan payments-1 · orchestra close payments-1")


def test_reply_challenge_plan_close_continue_an_investigation(tmp_path):
    env = clean_env(tmp_path, ORCHESTRA_MAX_AUTO_TURNS="1")
    first = investigate(tmp_path, "intermittent 401s on checkout", "--channel", "payments", env=env)
    assert first["status"] == "paused" and first["turn_count"] == 1

    replied = orchestra(tmp_path, "reply", "payments-1", "it only happens in the EU", "--json", env=env)
    assert replied.returncode == 0, replied.stderr
    report = json.loads(replied.stdout)
    assert report["id"] == "payments-1" and report["turn_count"] == 2
    assert report["new_turns"] == [report["turns"][-1]["seq"]]
    assert [t["text"] for t in report["human_turns"]][-1] == "it only happens in the EU"
    assert 'orchestra reply payments-1 "…"' in report["continue"]

    challenged = orchestra(tmp_path, "challenge", "payments-1", env=env)
    assert challenged.returncode == 0, challenged.stderr
    assert "Karen · critic" in challenged.stdout and challenged.stdout.splitlines()[-1].startswith("Continue: ")

    planned = json.loads(orchestra(tmp_path, "plan", "PAYMENTS-1", "--json", env=env).stdout)
    assert planned["turns"][-1]["mode"] == "planner"

    closed = orchestra(tmp_path, "close", "payments-1", env=env)
    assert closed.returncode == 0 and "closed by" in closed.stdout
    assert closed.stdout.splitlines()[-1] == 'Start again: orchestra investigate "…" --channel payments'
    listed = orchestra(tmp_path, "memory", "list", "--channel", "payments").stdout
    assert "payments-1\tinvestigation\tclosed" in listed


@pytest.mark.parametrize("command", [["reply", "nope-7", "more"], ["challenge", "nope-7"], ["plan", "nope-7", "--json"], ["close", "nope-7"]])
def test_continuing_an_unknown_id_is_a_usage_error(tmp_path, command):
    result = orchestra(tmp_path, *command)
    assert result.returncode == 2
    assert "nope-7" in result.stderr and "orchestra memory list" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_reply_without_text_is_a_usage_error(tmp_path):
    investigate(tmp_path, "intermittent 401s on checkout", "--channel", "payments")
    result = orchestra(tmp_path, "reply", "payments-1", "\u200b")
    assert result.returncode == 2 and "orchestra reply payments-1" in result.stderr and result.stdout == ""


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


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"DISCORD_GUILD_IDS": "123,my-server"}, "DISCORD_GUILD_IDS"),
        ({"DISCORD_API_URL": "discord.com/api"}, "DISCORD_API_URL"),
        ({"DISCORD_GATEWAY_URL": "https://gateway.discord.gg"}, "DISCORD_GATEWAY_URL"),
        ({"DISCORD_MESSAGE_CONTENT": "maybe"}, "DISCORD_MESSAGE_CONTENT"),
    ],
)
def test_bad_discord_settings_exit_2_before_anything_connects(tmp_path, extra, key):
    env = clean_env(tmp_path, DISCORD_TOKEN="discord-cli-token-123", **extra)
    result = orchestra(tmp_path, env=env, input="")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"orchestra: {key}: ") and "Traceback" not in result.stderr
    assert "discord-cli-token-123" not in result.stderr + result.stdout and result.stdout == ""
    assert not (tmp_path / "memory.db").exists()


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


def test_one_shot_output_wraps_like_the_chat(tmp_path):
    """`orchestra investigate` prints through the terminal outbox: it wraps to COLUMNS as the chat
    does, keeping each post's indent."""
    from adapters.terminal.render import display_width

    result = orchestra(tmp_path, "investigate", "intermittent 401s on checkout since the deploy on Tuesday night, "
                       "only for customers who pay with a saved card", env=clean_env(tmp_path, COLUMNS="60"))
    assert result.returncode == 0, result.stderr
    body = [line for line in result.stdout.splitlines() if line.startswith("   ")]
    assert body and max(display_width(line) for line in body) <= 60
    assert any(line.startswith("   ") and "Tuesday night" in line for line in result.stdout.splitlines())
