"""Settings: environment, .env and YAML, validated at once, secrets kept secret."""

from __future__ import annotations

import os
from datetime import timedelta
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
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-TOKEN")
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


DB_PASSWORD = "pg-TOPSECRET-pass"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "PostgreSQL"])
def test_a_postgresql_url_selects_postgresql_and_its_password_never_shows(monkeypatch, scheme):
    import io
    import logging

    from bot.logs import configure_logging
    from bot.setting_values import PostgresURL

    url = f"{scheme}://orchestra:{DB_PASSWORD}@db.example:5432/memory?sslmode=require"
    monkeypatch.setenv("ORCHESTRA_DB", url)
    s = load_settings()
    assert isinstance(s.db, PostgresURL) and s.db.get_secret_value() == url
    assert str(s.db) == f"{scheme.lower()}://orchestra@db.example:5432/memory"
    shown = repr(s) + str(s) + str(s.model_dump()) + s.model_dump_json() + repr(s.db) + f"{s.db}"
    assert DB_PASSWORD not in shown and "db.example:5432/memory" in shown
    stream = io.StringIO()  # a log line that quotes the URL (a driver's error) is scrubbed too
    configure_logging(s, stream)
    try:
        logging.getLogger("test").warning("could not connect to %s", s.db.get_secret_value())
    finally:
        logging.getLogger().handlers.clear()
    assert DB_PASSWORD not in stream.getvalue() and "could not connect" in stream.getvalue()


@pytest.mark.parametrize("value", ["memory.db", "sqlite:///memory.db"])
def test_a_path_or_a_sqlite_url_keeps_sqlite(monkeypatch, tmp_path, value):
    monkeypatch.setenv("ORCHESTRA_DB", value)
    assert load_settings().db == Path("memory.db")


def test_a_postgresql_url_with_a_bad_port_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_DB", f"postgresql://orchestra:{DB_PASSWORD}@db.example:54x2/memory")
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    text = problems_of(excinfo)
    assert "ORCHESTRA_DB" in text and "port" in text and DB_PASSWORD not in text and "db.example" not in text


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
        ({"SLACK_BOT_TOKEN": SLACK_SECRET, "SLACK_APP_TOKEN": "xapp-1-TOKEN", "SLACK_SIGNING_SECRET": "abc"}, True, True),
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


# --- half-set and swapped credentials -------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SLACK_APP_TOKEN": "xapp-1-TOKEN"}, "SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not"),
        ({"SLACK_SIGNING_SECRET": "abc123"}, "SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not"),
        ({"SLACK_APP_TOKEN": "xapp-1-T", "SLACK_SIGNING_SECRET": "abc"}, "SLACK_APP_TOKEN and SLACK_SIGNING_SECRET are set"),
        ({"SLACK_BOT_TOKEN": SLACK_SECRET}, "SLACK_BOT_TOKEN is set alone"),
        ({"SLACK_BOT_TOKEN": "xapp-1-TOKEN", "SLACK_APP_TOKEN": SLACK_SECRET}, "are swapped"),
        ({"SLACK_BOT_TOKEN": "xapp-1-TOKEN", "SLACK_SIGNING_SECRET": "abc"}, "SLACK_BOT_TOKEN holds an app-level token"),
        ({"SLACK_BOT_TOKEN": SLACK_SECRET, "SLACK_APP_TOKEN": "xoxp-1-user"}, "SLACK_APP_TOKEN holds a user token"),
        ({"SLACK_BOT_TOKEN": SLACK_SECRET, "SLACK_SIGNING_SECRET": SLACK_SECRET}, "SLACK_SIGNING_SECRET holds a token"),
    ],
)
def test_credentials_set_by_halves_or_swapped_are_named(monkeypatch, env, named):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    assert len(excinfo.value.problems) == 1 and named in str(excinfo.value)
    assert SLACK_SECRET not in str(excinfo.value) and "xapp-1" not in str(excinfo.value)


def test_pasted_tokens_lose_their_whitespace_and_empty_ones_count_as_unset(monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", f" {SLACK_SECRET}\n")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-TOKEN ")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "  ")
    s = load_settings()
    assert s.slack_bot_token.get_secret_value() == SLACK_SECRET and s.slack_socket_mode
    assert s.slack_signing_secret is None


def test_choices_ignore_case_and_spaces(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_PROVIDER", " OpenAI")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_SECRET)
    monkeypatch.setenv("ORCHESTRA_LOG_LEVEL", "info ")
    monkeypatch.setenv("ORCHESTRA_CRITIC", " Karen")
    s = load_settings()
    assert (s.provider, s.log_level, s.critic) == ("openai", "INFO", "Karen")


def test_an_anthropic_base_url_without_a_key_is_named_unless_offline_is_chosen(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://localhost:8080")
    with pytest.raises(SettingsError, match="ANTHROPIC_BASE_URL is set but ANTHROPIC_API_KEY is not"):
        load_settings()
    monkeypatch.setenv("ORCHESTRA_PROVIDER", "offline")
    assert load_settings().provider == "offline"


# --- the file named by ORCHESTRA_CONFIG ---------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "no such file"),
        ("max_turns: [1\n", "not valid YAML at line 2"),
        ("- max_turns\n- 3\n", "must be a mapping of settings"),
        ("just text\n", "not a single value"),
    ],
)
def test_a_config_file_that_cannot_be_used_is_named(monkeypatch, tmp_path, content, said):
    config = tmp_path / "orchestra.yaml"
    if content is not None:
        config.write_text(content, encoding="utf-8")
    monkeypatch.setenv("ORCHESTRA_CONFIG", str(config))
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    text = str(excinfo.value)
    assert text.startswith(f"ORCHESTRA_CONFIG={config}") and said in text


def test_the_config_file_may_be_named_in_dotenv_and_may_be_empty(monkeypatch, tmp_path):
    (tmp_path / "o.yaml").write_text("max_turns: 4\n", encoding="utf-8")
    (tmp_path / ".env").write_text("ORCHESTRA_CONFIG=o.yaml\n", encoding="utf-8")
    assert load_settings().max_turns == 4
    (tmp_path / "empty.yaml").write_text("# nothing yet\n", encoding="utf-8")
    monkeypatch.setenv("ORCHESTRA_CONFIG", "empty.yaml")  # the environment beats .env
    assert load_settings().max_turns == 10


# --- Discord --------------------------------------------------------------------------------------


def test_discord_defaults():
    s = load_settings()
    assert s.discord_guild_ids == [] and s.discord_admin_roles == []
    assert s.discord_api_url is None and s.discord_gateway_url is None
    assert s.discord_message_content is True


def test_discord_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "Bot discord-token-123\n")
    monkeypatch.setenv("DISCORD_GUILD_IDS", " 123456789012345678, 42,, 42")
    monkeypatch.setenv("DISCORD_API_URL", "http://127.0.0.1:8123")
    monkeypatch.setenv("DISCORD_GATEWAY_URL", "ws://127.0.0.1:8124/")
    monkeypatch.setenv("DISCORD_ADMIN_ROLES", "Moderators, 998877")
    monkeypatch.setenv("DISCORD_MESSAGE_CONTENT", "off")
    s = load_settings()
    assert s.discord_token.get_secret_value() == "discord-token-123"  # "Bot " is discord.py's to add
    assert s.discord_guild_ids == [123456789012345678, 42]
    assert (s.discord_api_url, s.discord_gateway_url) == ("http://127.0.0.1:8123", "ws://127.0.0.1:8124/")
    assert s.discord_admin_roles == ["Moderators", "998877"]
    assert s.discord_message_content is False and s.has_chat_platform


def test_discord_settings_from_a_yaml_file(monkeypatch, tmp_path):
    config = tmp_path / "orchestra.yaml"
    config.write_text(
        "discord_guild_ids: [123, '456']\n"
        "discord_admin_roles: [Moderators, 998877]\n"
        "discord_message_content: false\n"
        "discord_api_url: https://discord.example.com/api/v10\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ORCHESTRA_CONFIG", str(config))
    s = load_settings()
    assert s.discord_guild_ids == [123, 456]
    assert s.discord_admin_roles == ["Moderators", "998877"]
    assert s.discord_message_content is False
    assert s.discord_api_url == "https://discord.example.com/api/v10"


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("DISCORD_GUILD_IDS", "123,my-server", "'my-server' is not a server id"),
        ("DISCORD_GUILD_IDS", "-5", "'-5' is not a server id"),
        ("DISCORD_GUILD_IDS", "12.5", "'12.5' is not a server id"),
        ("DISCORD_GUILD_IDS", "١٢٣", "'١٢٣' is not a server id"),
        ("DISCORD_GUILD_IDS", "9" * 30, "is not a server id"),
        ("DISCORD_API_URL", "discord.com/api", "must be an http:// or https:// URL"),
        ("DISCORD_API_URL", "wss://gateway.discord.gg", "must be an http:// or https:// URL"),
        ("DISCORD_API_URL", "http://host:notaport/api", "must be an http:// or https:// URL"),
        ("DISCORD_GATEWAY_URL", "https://gateway.discord.gg", "must be a ws:// or wss:// URL"),
        ("DISCORD_GATEWAY_URL", "wss://", "must be a ws:// or wss:// URL"),
        ("DISCORD_MESSAGE_CONTENT", "maybe", "must be true or false (got 'maybe')"),
        ("DISCORD_CATCH_UP", "an hour", "'an hour' is not a duration: write a number and a unit"),
        ("DISCORD_CATCH_UP", "-1h", "'-1h' is not a duration"),
        ("DISCORD_CATCH_UP", "3600", "'3600' is not a duration"),
    ],
)
def test_a_bad_discord_setting_is_named(monkeypatch, key, value, said):
    monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    assert problems_of(excinfo).startswith(f"{key}: ") and said in problems_of(excinfo)


@pytest.mark.parametrize(("value", "window"), [
    (None, timedelta(hours=1)), ("90m", timedelta(minutes=90)), ("1d", timedelta(days=1)),
    ("0", timedelta()), ("off", timedelta()), ("0s", timedelta()),
])
def test_how_far_back_discord_catches_up_after_a_restart(monkeypatch, value, window):
    if value is not None:
        monkeypatch.setenv("DISCORD_CATCH_UP", value)
    assert load_settings().discord_catch_up == window


def test_an_empty_discord_url_means_discords_own(monkeypatch):
    monkeypatch.setenv("DISCORD_API_URL", "  ")
    assert load_settings().discord_api_url is None


def test_a_slack_token_in_discord_token_is_named(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", SLACK_SECRET)
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    assert "DISCORD_TOKEN holds a Slack token" in str(excinfo.value) and SLACK_SECRET not in str(excinfo.value)
