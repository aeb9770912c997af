"""Settings: environment variables, an optional `.env`, and an optional YAML file, validated at start-up.

Orchestra's own keys start with `ORCHESTRA_`; the SDKs' and platforms' keep their usual names
(`ANTHROPIC_API_KEY`, `SLACK_BOT_TOKEN`, ...). A misspelt `ORCHESTRA_` key, an unknown key in the
YAML file or a bad value stops start-up with the key's name and what is allowed. Secrets are
`SecretStr`: they print as `**********`.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import NoDecode, YamlConfigSettingsSource

ProviderName = Literal["anthropic", "openai", "offline"]

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
        super().__init__("Configuration problems:\n" + "\n".join(f"  - {p}" for p in problems))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        # a .env shared with other tools is fine: only our keys are read from it (misspelt
        # ORCHESTRA_ keys are still caught by `_stray_env_keys`); the YAML file stays strict
        dotenv_filtering="only_existing",
        extra="forbid",
        populate_by_name=True,
        validate_default=True,
    )

    # --- storage and personas
    db: Path = Field(default_factory=default_db_path, validation_alias=AliasChoices("ORCHESTRA_DB", "db"))
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
    stalled_after_minutes: int = Field(
        60, ge=1, validation_alias=AliasChoices("ORCHESTRA_STALLED_AFTER_MINUTES", "stalled_after_minutes")
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

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", validation_alias=AliasChoices("ORCHESTRA_LOG_LEVEL", "log_level")
    )

    @field_validator("slack_admins", "allowed_channels", "allowed_users", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        """Environment variables give "U1,U2"; YAML gives a list. Accept both."""
        if isinstance(v, str):
            return [item.strip() for item in v.split(",") if item.strip()]
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _choose_provider(self) -> "Settings":
        """Unset provider: Anthropic if its key is present, else OpenAI (key or local base URL), else offline."""
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
        config_file = os.environ.get("ORCHESTRA_CONFIG")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
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
    def model_name(self) -> str:
        return {"anthropic": self.anthropic_model, "openai": self.openai_model}.get(
            self.provider or "offline", "offline"
        )

    @property
    def cast(self) -> dict[str, str]:
        return {"researcher": self.researcher, "critic": self.critic, "planner": self.planner}


def _known_env_names() -> set[str]:
    names: set[str] = {"ORCHESTRA_CONFIG"}
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c for c in alias.choices if isinstance(c, str) and c.isupper())
    return names


def _stray_env_keys(environ: dict[str, str]) -> list[str]:
    """ORCHESTRA_* variables that are not settings: almost always a typo."""
    known = _known_env_names()
    problems = []
    for key in sorted(k for k in environ if k.startswith("ORCHESTRA_") and k not in known):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(sorted(known))}"
        problems.append(f"{key}: not a setting{hint}")
    return problems


def _dotenv_keys() -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(".env").items()} if Path(".env").is_file() else {}


def load_settings(**overrides: Any) -> Settings:
    """Read and validate everything; raise `SettingsError` listing every problem at once."""
    problems = _stray_env_keys({**_dotenv_keys(), **os.environ})
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
            problems.append(f"{key}: {msg}")
    if problems or settings is None:
        raise SettingsError(problems)
    return settings
