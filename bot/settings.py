"""Settings: environment variables, an optional `.env`, and an optional YAML file, validated at start-up.

Orchestra's own keys start with `ORCHESTRA_`; the SDKs' and platforms' keep their usual names
(`ANTHROPIC_API_KEY`, `SLACK_BOT_TOKEN`, ...). A misspelt `ORCHESTRA_` key, an unknown key in the
YAML file or a bad value stops start-up with the key's name and what is allowed. Secrets are
`SecretStr`: they print as `**********`.

This module holds the model: each setting, its validators, where values come from; how one value's
text is parsed is in `bot.setting_values` (and `bot.job_settings` for the jobs'). The checks
across settings (a misspelt `ORCHESTRA_` key, credentials set by halves or swapped) are in
`bot.settings_checks`; `load_settings`, here, runs both and lists every problem at once.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import InitSettingsSource, NoDecode

from bot.job_settings import DailyTime
from bot.setting_values import (
    PostgresURL,
    comma_list,
    db_location,
    discord_url,
    duration_or_off,
    guild_ids,
    secret_text,
    shard_ids,
    switch,
)

ProviderName = Literal["anthropic", "openai", "offline"]
#: Model calls in flight at once, unless ORCHESTRA_MAX_MODEL_CALLS says otherwise.
DEFAULT_MAX_MODEL_CALLS = 256

DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-5-5"
DEFAULT_OPENAI_MODEL = "gpt-5.4-mini"


def default_db_path() -> Path:
    """Under the user's data directory (XDG on Linux), so every checkout shares one memory."""
    from platformdirs import user_data_path

    return user_data_path("orchestra", appauthor=False) / "orchestra.db"


def _alias(name: str, *more: str) -> Any:
    """An optional setting read from `name` (environment) or its lower-case field name (YAML)."""
    return Field(None, validation_alias=AliasChoices(name, name.lower(), *more))


class SettingsError(ValueError):
    """Start-up configuration problems, one line each, safe to print (no secret values)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        if len(problems) == 1:
            super().__init__(problems[0])
        else:
            super().__init__("Configuration problems:\n" + "\n".join(f"  - {p}" for p in problems))


def read_config_file(value: str) -> dict[str, Any]:
    """The mapping in the YAML file named by ORCHESTRA_CONFIG, or one `SettingsError` saying what
    is wrong with it and where: a file named on purpose that is missing must not be ignored."""
    import yaml

    path = Path(value).expanduser().absolute()
    where = f"ORCHESTRA_CONFIG={value}" + (f" ({path})" if str(path) != value else "")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError([f"{where}: no such file; fix the path, or unset ORCHESTRA_CONFIG"]) from None
    except IsADirectoryError:
        raise SettingsError([f"{where}: is a directory; name a YAML file"]) from None
    except UnicodeDecodeError:
        raise SettingsError([f"{where}: is not UTF-8 text; save it as UTF-8 YAML"]) from None
    except OSError as e:
        raise SettingsError([f"{where}: cannot read it ({e.strerror or 'unreadable'})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SettingsError([f"{where}: not valid YAML{at}; fix it (settings are `key: value` lines, e.g. `max_turns: 12`)"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError([
            f"{where}: must be a mapping of settings (`key: value` lines, e.g. `max_turns: 12`), "
            f"not a {'list' if isinstance(data, list) else 'single value'}"
        ])
    return data


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        # a .env shared with other tools is fine: only our keys are read from it (misspelt
        # ORCHESTRA_ keys are still caught by `bot.settings_checks.stray_env_keys`); the YAML file stays strict
        dotenv_filtering="only_existing",
        extra="forbid",
        populate_by_name=True,
        validate_default=True,
    )

    # --- storage and personas
    # a SQLite file, or a PostgreSQL database (`PostgresURL`: its password never shows)
    db: Path | PostgresURL = Field(default_factory=default_db_path, union_mode="left_to_right",
                                   validation_alias=AliasChoices("ORCHESTRA_DB", "db"))
    personas_file: Path | None = _alias("ORCHESTRA_PERSONAS", "personas_file")

    # --- models
    provider: ProviderName | None = _alias("ORCHESTRA_PROVIDER", "provider")
    anthropic_api_key: SecretStr | None = _alias("ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = _alias("ANTHROPIC_BASE_URL")
    anthropic_model: str = Field(
        DEFAULT_ANTHROPIC_MODEL,
        validation_alias=AliasChoices("ORCHESTRA_ANTHROPIC_MODEL", "anthropic_model"),
    )
    openai_api_key: SecretStr | None = _alias("OPENAI_API_KEY")
    openai_base_url: str | None = _alias("OPENAI_BASE_URL")
    openai_model: str = Field(
        DEFAULT_OPENAI_MODEL, validation_alias=AliasChoices("ORCHESTRA_OPENAI_MODEL", "openai_model")
    )
    model_timeout: float = Field(
        60.0, gt=0, le=600, validation_alias=AliasChoices("ORCHESTRA_MODEL_TIMEOUT", "model_timeout")
    )
    model_max_retries: int = Field(
        2, ge=0, le=10, validation_alias=AliasChoices("ORCHESTRA_MODEL_MAX_RETRIES", "model_max_retries")
    )
    # model calls in flight at once: a burst's posts are not starved by its model calls, and the
    # SDK's connection pool is sized to match (engine.providers.limit)
    max_model_calls: int = Field(
        DEFAULT_MAX_MODEL_CALLS, ge=1, le=5000,
        validation_alias=AliasChoices("ORCHESTRA_MAX_MODEL_CALLS", "max_model_calls"),
    )

    # --- investigations
    max_turns: int = Field(10, ge=1, le=50, validation_alias=AliasChoices("ORCHESTRA_MAX_TURNS", "max_turns"))
    max_auto_turns: int = Field(
        4, ge=1, le=20, validation_alias=AliasChoices("ORCHESTRA_MAX_AUTO_TURNS", "max_auto_turns")
    )
    researcher: str = Field("sophia", validation_alias=AliasChoices("ORCHESTRA_RESEARCHER", "researcher"))
    critic: str = Field("karen", validation_alias=AliasChoices("ORCHESTRA_CRITIC", "critic"))
    planner: str = Field("cherry", validation_alias=AliasChoices("ORCHESTRA_PLANNER", "planner"))
    context_tokens: int = Field(
        6000, ge=500, le=200_000, validation_alias=AliasChoices("ORCHESTRA_CONTEXT_TOKENS", "context_tokens")
    )
    stalled_after_minutes: int | None = Field(  # deprecated: ORCHESTRA_NUDGE_AFTER replaces it
        None, ge=1, validation_alias=AliasChoices("ORCHESTRA_STALLED_AFTER_MINUTES", "stalled_after_minutes")
    )

    # --- crews (engine.crews): the longest a crew may work before it is reported as timed out
    crew_timeout: timedelta = Field(
        timedelta(minutes=10), validation_alias=AliasChoices("ORCHESTRA_CREW_TIMEOUT", "crew_timeout")
    )

    # --- scheduled jobs (bot.job_settings parses the values; bot.jobs builds the jobs)
    nudge_after: timedelta = Field(
        timedelta(hours=4), validation_alias=AliasChoices("ORCHESTRA_NUDGE_AFTER", "nudge_after")
    )
    digest_at: DailyTime | None = _alias("ORCHESTRA_DIGEST_AT", "digest_at")
    digest_channels: Annotated[list[tuple[str, str | None, str]], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("ORCHESTRA_DIGEST_CHANNELS", "digest_channels")
    )
    retention_days: int = Field(
        90, ge=0, le=36500, validation_alias=AliasChoices("ORCHESTRA_RETENTION_DAYS", "retention_days")
    )
    personas_refresh: timedelta = Field(
        timedelta(minutes=5), validation_alias=AliasChoices("ORCHESTRA_PERSONAS_REFRESH", "personas_refresh")
    )

    # --- Slack
    slack_bot_token: SecretStr | None = _alias("SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = _alias("SLACK_APP_TOKEN")
    slack_signing_secret: SecretStr | None = _alias("SLACK_SIGNING_SECRET")
    slack_api_url: str | None = _alias("SLACK_API_URL")
    slack_admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("ORCHESTRA_SLACK_ADMINS", "slack_admins")
    )
    allowed_channels: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("ORCHESTRA_ALLOWED_CHANNELS", "allowed_channels")
    )
    allowed_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("ORCHESTRA_ALLOWED_USERS", "allowed_users")
    )

    # --- Discord
    discord_token: SecretStr | None = _alias("DISCORD_TOKEN")
    discord_guild_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("DISCORD_GUILD_IDS", "discord_guild_ids")
    )
    discord_api_url: str | None = _alias("DISCORD_API_URL")
    discord_gateway_url: str | None = _alias("DISCORD_GATEWAY_URL")
    discord_admin_roles: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("DISCORD_ADMIN_ROLES", "discord_admin_roles")
    )
    discord_message_content: bool = Field(
        True, validation_alias=AliasChoices("DISCORD_MESSAGE_CONTENT", "discord_message_content")
    )
    # sharding (several replicas split Discord's gateway): the shards this replica runs, of how many
    discord_shard_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("DISCORD_SHARD_IDS", "discord_shard_ids")
    )
    discord_shard_count: int | None = Field(
        None, ge=1, le=10_000, validation_alias=AliasChoices("DISCORD_SHARD_COUNT", "discord_shard_count")
    )
    # after a restart, read what was posted this long back in the places the memory knows (Discord
    # never sends it again: adapters.discord.catch_up); 0 turns it off
    discord_catch_up: timedelta = Field(
        timedelta(hours=1), validation_alias=AliasChoices("DISCORD_CATCH_UP", "discord_catch_up")
    )

    # --- several replicas on one PostgreSQL: seconds without a heartbeat before a replica counts
    # as dead and the others take over its unfinished tasks and its lanes
    replica_lease: float = Field(
        15.0, ge=1, le=600, validation_alias=AliasChoices("ORCHESTRA_REPLICA_LEASE", "replica_lease")
    )

    # --- Notion (personas kept in a Notion database; both or neither)
    notion_api_key: SecretStr | None = _alias("NOTION_API_KEY")
    notion_personas_db_id: str | None = _alias("NOTION_PERSONAS_DB_ID")
    notion_api_url: str | None = _alias("NOTION_API_URL")
    personas_ttl: float = Field(
        300.0, gt=0, le=86_400, validation_alias=AliasChoices("ORCHESTRA_PERSONAS_TTL", "personas_ttl")
    )

    # --- the operator HTTP API (`orchestra serve`; off, every /api/ path 404, without a token)
    api_token: SecretStr | None = _alias("ORCHESTRA_API_TOKEN", "api_token")
    api_read_token: SecretStr | None = _alias("ORCHESTRA_API_READ_TOKEN", "api_read_token")
    api_max_body: int = Field(
        1024 * 1024, ge=1024, le=100 * 1024 * 1024,
        validation_alias=AliasChoices("ORCHESTRA_API_MAX_BODY", "api_max_body"),
    )

    _provider_chosen: bool = PrivateAttr(False)  # ORCHESTRA_PROVIDER was given, not inferred

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", validation_alias=AliasChoices("ORCHESTRA_LOG_LEVEL", "log_level")
    )

    @field_validator("slack_admins", "allowed_channels", "allowed_users", "discord_admin_roles", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        return comma_list(v)

    @field_validator("discord_guild_ids", mode="before")
    @classmethod
    def _guild_ids(cls, v: Any) -> Any:
        return guild_ids(v)

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _shard_ids(cls, v: Any) -> Any:
        return shard_ids(v)

    @model_validator(mode="after")
    def _shards(self) -> "Settings":
        """Both or neither, and every shard one of the count: a replica must know its part of
        the whole, or two replicas would both answer (or neither would)."""
        ids, count = self.discord_shard_ids, self.discord_shard_count
        if ids and count is None:
            raise ValueError("DISCORD_SHARD_IDS is set but DISCORD_SHARD_COUNT is not: set the number of shards "
                             "all replicas split (e.g. 2), or unset DISCORD_SHARD_IDS")
        if count is not None and not ids:
            raise ValueError("DISCORD_SHARD_COUNT is set but DISCORD_SHARD_IDS is not: set the shards this replica "
                             "runs (e.g. 0,1), or unset DISCORD_SHARD_COUNT")
        if count is not None and any(i >= count for i in ids):
            raise ValueError(f"DISCORD_SHARD_IDS: shards are numbered 0 to {count - 1} when DISCORD_SHARD_COUNT "
                             f"is {count}; got {', '.join(str(i) for i in ids if i >= count)}")
        return self

    @field_validator("db", mode="before")
    @classmethod
    def _db_location(cls, v: Any) -> Any:
        return db_location(v)

    @field_validator("discord_api_url", "discord_gateway_url", mode="before")
    @classmethod
    def _discord_url(cls, v: Any, info: ValidationInfo) -> Any:
        return discord_url(v, gateway=info.field_name == "discord_gateway_url")

    @field_validator("discord_message_content", mode="before")
    @classmethod
    def _switch(cls, v: Any) -> Any:
        return switch(v)

    @field_validator("notion_personas_db_id", "notion_api_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, v: Any) -> Any:
        return (v.strip() or None) if isinstance(v, str) else v

    @field_validator("nudge_after", "personas_refresh", "crew_timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        from bot.job_settings import parse_duration

        return parse_duration(str(v)) if isinstance(v, (str, int)) else v

    @field_validator("discord_catch_up", mode="before")
    @classmethod
    def _duration_or_off(cls, v: Any) -> Any:
        return duration_or_off(v)

    @field_validator("digest_at", mode="before")
    @classmethod
    def _daily_time(cls, v: Any) -> Any:
        from bot.job_settings import parse_daily_time

        if isinstance(v, str):
            return parse_daily_time(v) if v.strip() else None
        return v

    @field_validator("digest_channels", mode="before")
    @classmethod
    def _channels(cls, v: Any) -> Any:
        from bot.job_settings import parse_channels

        if isinstance(v, list):  # YAML: a list of the same items
            v = ",".join(str(item) for item in v)
        return parse_channels(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _jobs(self) -> "Settings":
        """The deprecated minutes still count when the new setting is not given; a digest needs
        both its time and its channels."""
        if self.stalled_after_minutes is not None and "nudge_after" not in self.model_fields_set:
            self.nudge_after = timedelta(minutes=self.stalled_after_minutes)
        if self.digest_at is not None and not self.digest_channels:
            raise ValueError("ORCHESTRA_DIGEST_AT is set but ORCHESTRA_DIGEST_CHANNELS is not: name the channels "
                             "the digest goes to (e.g. slack:C0123ABCD, local:terminal), or unset ORCHESTRA_DIGEST_AT")
        if self.digest_channels and self.digest_at is None:
            raise ValueError("ORCHESTRA_DIGEST_CHANNELS is set but ORCHESTRA_DIGEST_AT is not: set the time "
                             "(e.g. 09:00 Europe/Paris), or unset ORCHESTRA_DIGEST_CHANNELS")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("provider", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        """`OpenAI` and ` openai` mean `openai`: case never matters for a choice from a list."""
        return (v.strip().lower() or None) if isinstance(v, str) else v

    @field_validator("researcher", "critic", "planner", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return v.strip() if isinstance(v, str) else v  # the registry matches names in any case

    @field_validator(
        "anthropic_api_key", "openai_api_key", "slack_bot_token", "slack_app_token", "slack_signing_secret",
        "discord_token", "notion_api_key", "api_token", "api_read_token", mode="before",
    )
    @classmethod
    def _secret_text(cls, v: Any, info: ValidationInfo) -> Any:
        return secret_text(v, discord_token=info.field_name == "discord_token")

    @model_validator(mode="after")
    def _choose_provider(self) -> "Settings":
        """Unset provider: Anthropic if its key is present, else OpenAI (key or local base URL), else offline."""
        self._provider_chosen = self.provider is not None
        if self.provider is None:
            if self.anthropic_api_key:
                self.provider = "anthropic"
            elif self.openai_api_key or self.openai_base_url:
                self.provider = "openai"
            else:
                self.provider = "offline"
        elif self.provider == "anthropic" and not self.anthropic_api_key:
            raise ValueError("ORCHESTRA_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
        elif self.provider == "openai" and not (self.openai_api_key or self.openai_base_url):
            raise ValueError("ORCHESTRA_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        config_file = (os.environ.get("ORCHESTRA_CONFIG") or _dotenv_keys().get("ORCHESTRA_CONFIG") or "").strip()
        if config_file:
            # what pydantic-settings' YAML source does, with errors people can act on
            sources.append(InitSettingsSource(settings_cls, read_config_file(config_file)))
        return tuple(sources)

    # --- derived ------------------------------------------------------------------------------

    @property
    def slack_socket_mode(self) -> bool:
        return bool(self.slack_bot_token and self.slack_app_token)

    @property
    def slack_http_mode(self) -> bool:
        return bool(self.slack_bot_token and self.slack_signing_secret)

    @property
    def has_chat_platform(self) -> bool:
        return bool(self.slack_socket_mode or self.slack_http_mode or self.discord_token)

    @property
    def notion_personas(self) -> bool:
        """Personas come from Notion (both settings given; `bot.settings_checks.credential_problems` refuses one alone)."""
        return bool(self.notion_api_key and self.notion_personas_db_id)

    @property
    def model_name(self) -> str:
        return {"anthropic": self.anthropic_model, "openai": self.openai_model}.get(
            self.provider or "offline", "offline"
        )

    @property
    def cast(self) -> dict[str, str]:
        return {"researcher": self.researcher, "critic": self.critic, "planner": self.planner}


def _dotenv_keys() -> dict[str, str]:
    """The `.env` file's keys: ORCHESTRA_CONFIG may be set there, and `load_settings` checks its
    ORCHESTRA_ keys for typos too."""
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(".env").items()} if Path(".env").is_file() else {}


def load_settings(*, notion_key_alone: bool = False, **overrides: Any) -> Settings:
    """Read and validate everything; raise `SettingsError` listing every problem at once.
    `notion_key_alone`: NOTION_API_KEY without a database is fine (`orchestra personas init-notion`
    is what creates the database)."""
    from bot.settings_checks import credential_problems, stray_env_keys  # they read `Settings`: imported here, not above

    problems = stray_env_keys({**_dotenv_keys(), **os.environ})
    settings: Settings | None = None
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "settings"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "not a setting (check the spelling)"
            elif "input" in err and err["type"] in ("literal_error", "enum"):
                msg = f"{msg} (got {err['input']!r})"
            problems.append(f"{key}: {msg}" if err["loc"] else msg)
    except SettingsError as e:  # the file named by ORCHESTRA_CONFIG
        problems.extend(e.problems)
    if settings is not None:
        problems.extend(p for p in credential_problems(settings)
                        if not (notion_key_alone and p.startswith("NOTION_API_KEY is set but")))
    if problems or settings is None:
        raise SettingsError(problems)
    return settings
