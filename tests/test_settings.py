"""Settings: environment, .env and YAML, validated at once, secrets kept secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings

PREFIXES = ("ORCHESTRA_", "ANTHROPIC_", "OPENAI_", "SLACK_", "DISCORD_")
ANTHROPIC_SECRET = "sk-ant-api03-TOPSECRET-abcdef123456"
OPENAI_SECRET = "sk-proj-TOPSECRET-0987654321"
SLACK_SECRET = "xoxb-1111-2222-TOPSECRET"


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    """No settings from the machine running the tests; the working directory has no .env."""
    for key in list(os.environ):
        if key.startswith(PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


def problems_of(excinfo: pytest.ExceptionInfo[SettingsError]) -> str:
    return "\n".join(excinfo.value.problems)


# --- sources ------------------------------------------------------------------------------------


def test_defaults(tmp_path):
    s = load_settings()
    assert s.provider == "offline" and s.model_name == "offline"
    assert s.db == tmp_path / "xdg" / "orchestra" / "orchestra.db"
    assert (s.max_turns, s.max_auto_turns, s.context_tokens) == (10, 4, 6000)
    assert s.cast == {"researcher": "sophia", "critic": "karen", "planner": "cherry"}
    assert not s.has_chat_platform
    assert s.log_level == "WARNING"


def test_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ORCHESTRA_DB", str(tmp_path / "m.db"))
    monkeypatch.setenv("ORCHESTRA_MAX_TURNS", "7")
    monkeypatch.setenv("ORCHESTRA_CRITIC", "cherry")
    monkeypatch.setenv("ORCHESTRA_LOG_LEVEL", "debug")
    s = load_settings()
    assert s.db == tmp_path / "m.db"
    assert s.max_turns == 7
    assert s.cast["critic"] == "cherry"
    assert s.log_level == "DEBUG"


def test_from_a_dotenv_file_with_the_environment_winning(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(
        f"ORCHESTRA_MAX_TURNS=3\nORCHESTRA_PLANNER=karen\nANTHROPIC_API_KEY={ANTHROPIC_SECRET}\n", encoding="utf-8"
    )
    monkeypatch.setenv("ORCHESTRA_MAX_TURNS", "5")
    s = load_settings()
    assert s.max_turns == 5  # the environment beats .env
    assert s.planner == "karen"
    assert s.provider == "anthropic"
    assert s.anthropic_api_key.get_secret_value() == ANTHROPIC_SECRET


def test_a_dotenv_shared_with_other_tools_is_fine(tmp_path):
    (tmp_path / ".env").write_text("ORCHESTRA_MAX_TURNS=3\nDATABASE_URL=postgres://x\n", encoding="utf-8")
    assert load_settings().max_turns == 3


def test_from_a_yaml_file(monkeypatch, tmp_path):
    config = tmp_path / "orchestra.yaml"
    config.write_text(
        "max_turns: 12\n"
        "researcher: karen\n"
        "allowed_channels: [C1, C2]\n"
        "openai_model: llama3.2\n"
        "openai_base_url: http://localhost:11434/v1\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ORCHESTRA_CONFIG", str(config))
    monkeypatch.setenv("ORCHESTRA_MAX_TURNS", "9")
    s = load_settings()
    assert s.max_turns == 9  # the environment beats the file
    assert s.researcher == "karen"
    assert s.allowed_channels == ["C1", "C2"]
    assert s.provider == "openai" and s.model_name == "llama3.2"


def test_a_wrong_key_in_yaml_is_named(monkeypatch, tmp_path):
    config = tmp_path / "orchestra.yaml"
    config.write_text("max_turn: 5\nresearcher: sophia\n", encoding="utf-8")
    monkeypatch.setenv("ORCHESTRA_CONFIG", str(config))
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    assert "max_turn" in problems_of(excinfo)
    assert "not a setting" in problems_of(excinfo)


def test_a_typo_in_the_environment_is_named_with_a_suggestion(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_PROVDER", "openai")
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    assert "ORCHESTRA_PROVDER" in str(excinfo.value)
    assert "did you mean ORCHESTRA_PROVIDER" in str(excinfo.value)


def test_every_problem_is_reported_at_once(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_MAX_TURNS", "0")
    monkeypatch.setenv("ORCHESTRA_PROVIDER", "foo")
    monkeypatch.setenv("ORCHESTRA_LOG_LEVEL", "loud")
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    text = problems_of(excinfo)
    for key in ("ORCHESTRA_MAX_TURNS", "ORCHESTRA_PROVIDER", "ORCHESTRA_LOG_LEVEL"):
        assert key in text
    assert "'foo'" in text  # what was given, for a non-secret value


# --- provider choice ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "provider"),
    [
        ({"ANTHROPIC_API_KEY": ANTHROPIC_SECRET}, "anthropic"),
        ({"ANTHROPIC_API_KEY": ANTHROPIC_SECRET, "OPENAI_API_KEY": OPENAI_SECRET}, "anthropic"),
        ({"OPENAI_API_KEY": OPENAI_SECRET}, "openai"),
        ({"OPENAI_BASE_URL": "http://localhost:11434/v1"}, "openai"),
        ({}, "offline"),
        ({"ANTHROPIC_API_KEY": ANTHROPIC_SECRET, "ORCHESTRA_PROVIDER": "offline"}, "offline"),
        ({"ANTHROPIC_API_KEY": ANTHROPIC_SECRET, "OPENAI_API_KEY": OPENAI_SECRET, "ORCHESTRA_PROVIDER": "openai"}, "openai"),
    ],
)
def test_provider_choice(monkeypatch, env, provider):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert load_settings().provider == provider


def test_an_explicit_provider_needs_its_key(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_PROVIDER", "anthropic")
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    assert "ANTHROPIC_API_KEY" in str(excinfo.value)


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_never_show_in_repr_str_or_dumps(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_SECRET)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_SECRET)
    s = load_settings()
    shown = repr(s) + str(s) + str(s.model_dump()) + s.model_dump_json()
    for secret in (ANTHROPIC_SECRET, OPENAI_SECRET, SLACK_SECRET):
        assert secret not in shown
    assert "**********" in shown


def test_secrets_never_show_in_error_messages(monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_SECRET)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_SECRET)
    monkeypatch.setenv("ORCHESTRA_PROVIDER", "foo")
    monkeypatch.setenv("ORCHESTRA_PROVDER", ANTHROPIC_SECRET)  # a secret pasted into the wrong key
    config = tmp_path / "orchestra.yaml"
    config.write_text(f"openai_api_key: [{OPENAI_SECRET}]\nslack_app_tokn: {SLACK_SECRET}\n", encoding="utf-8")
    monkeypatch.setenv("ORCHESTRA_CONFIG", str(config))
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    text = str(excinfo.value) + repr(excinfo.value)
    for secret in (ANTHROPIC_SECRET, OPENAI_SECRET, SLACK_SECRET):
        assert secret not in text
    assert "openai_api_key" in text.lower() and "slack_app_tokn" in text


# --- lists and derived values -------------------------------------------------------------------


def test_comma_lists(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_ALLOWED_CHANNELS", "C1, C2,,C3 ")
    monkeypatch.setenv("ORCHESTRA_SLACK_ADMINS", "U1")
    monkeypatch.setenv("ORCHESTRA_ALLOWED_USERS", "")
    s = load_settings()
    assert s.allowed_channels == ["C1", "C2", "C3"]
    assert s.slack_admins == ["U1"]
    assert s.allowed_users == []


@pytest.mark.parametrize(
    ("env", "socket", "http"),
    [
        ({"SLACK_BOT_TOKEN": SLACK_SECRET, "SLACK_APP_TOKEN": "xapp-1-TOKEN"}, True, False),
        ({"SLACK_BOT_TOKEN": SLACK_SECRET, "SLACK_SIGNING_SECRET": "abc123"}, False, True),
        ({"SLACK_APP_TOKEN": "xapp-1-TOKEN"}, False, False),
    ],
)
def test_slack_modes(monkeypatch, env, socket, http):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    assert (s.slack_socket_mode, s.slack_http_mode, s.has_chat_platform) == (socket, http, socket or http)


def test_discord_counts_as_a_chat_platform(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "discord-token")
    assert load_settings().has_chat_platform


def test_overrides_by_field_name(tmp_path):
    s = load_settings(db=tmp_path / "x.db", max_turns=2)
    assert isinstance(s, Settings) and s.db == Path(tmp_path / "x.db") and s.max_turns == 2


def test_a_misspelt_key_in_dotenv_is_still_caught(tmp_path):
    (tmp_path / ".env").write_text("ORCHESTRA_MAX_TRUNS=3\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="ORCHESTRA_MAX_TRUNS: not a setting; did you mean ORCHESTRA_MAX_TURNS"):
        load_settings()
