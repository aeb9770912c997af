"""The checks `load_settings` runs across settings, after each value alone has passed `Settings`.

Each value can be valid while the whole is not: an `ORCHESTRA_` key that is no setting (a typo),
credentials set by halves or in each other's place (Slack's bot and app tokens swapped, Notion's
key without its database, a read-only API token without the read-write one). Each check returns
one line per problem, safe to print (it names the setting, never its value if secret), so
`load_settings` can list every problem at once and stop start-up with exit code 2.

Kept apart from `bot.settings`, which holds the model (fields, their validators, sources): that
module is what the rest of the code imports; these checks only `load_settings` runs.
"""

from __future__ import annotations

import difflib
import re

from pydantic import AliasChoices, SecretStr

from bot.settings import Settings


def _known_env_names() -> set[str]:
    names: set[str] = {"ORCHESTRA_CONFIG"}
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c for c in alias.choices if isinstance(c, str) and c.isupper())
    return names


def stray_env_keys(environ: dict[str, str]) -> list[str]:
    """ORCHESTRA_* variables that are not settings: almost always a typo."""
    known = _known_env_names()
    problems = []
    for key in sorted(k for k in environ if k.startswith("ORCHESTRA_") and k not in known):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(sorted(known))}"
        problems.append(f"{key}: not a setting{hint}")
    return problems


BOT_TOKEN_HELP = "the Bot User OAuth Token (xoxb-…, under OAuth & Permissions)"
APP_TOKEN_HELP = "an app-level token (xapp-…, with connections:write, under Basic Information → App-Level Tokens)"


def _starts(secret: SecretStr | None, *prefixes: str) -> bool:
    return secret is not None and secret.get_secret_value().startswith(prefixes)


def credential_problems(s: Settings) -> list[str]:
    """Credentials that come in pairs, set by halves, or in each other's place: each one would
    otherwise be ignored in silence (the terminal opens instead) or fail later with a bare
    `invalid_auth`. Only checks that are certain: Slack's token prefixes are documented."""
    problems: list[str] = []
    bot, app, secret = s.slack_bot_token, s.slack_app_token, s.slack_signing_secret
    if _starts(bot, "xapp-") and _starts(app, "xoxb-"):
        problems.append("SLACK_BOT_TOKEN and SLACK_APP_TOKEN are swapped: the bot token starts with xoxb-, "
                        "the app-level token with xapp-")
    else:
        if _starts(bot, "xapp-"):
            problems.append(f"SLACK_BOT_TOKEN holds an app-level token (xapp-…): it takes {BOT_TOKEN_HELP}")
        if _starts(app, "xox"):
            problems.append(f"SLACK_APP_TOKEN holds a {'bot' if _starts(app, 'xoxb-') else 'user'} token: "
                            f"it takes {APP_TOKEN_HELP}")
    if _starts(secret, "xox", "xapp-"):
        problems.append("SLACK_SIGNING_SECRET holds a token: it takes the Signing Secret under "
                        "Basic Information → App Credentials")
    if not bot and (app or secret):
        given = " and ".join(n for n, v in (("SLACK_APP_TOKEN", app), ("SLACK_SIGNING_SECRET", secret)) if v)
        problems.append(f"{given} {'are' if app and secret else 'is'} set but SLACK_BOT_TOKEN is not: set it to "
                        f"{BOT_TOKEN_HELP}, or unset {given} to run without Slack")
    elif bot and not (app or secret):
        problems.append("SLACK_BOT_TOKEN is set alone: Slack also needs SLACK_APP_TOKEN for Socket Mode, "
                        f"{APP_TOKEN_HELP}, or SLACK_SIGNING_SECRET for HTTP mode (--slack-http); "
                        "or unset SLACK_BOT_TOKEN to run without Slack")
    if _starts(s.discord_token, "xox", "xapp-"):
        problems.append("DISCORD_TOKEN holds a Slack token: it takes the bot token from the Discord developer portal "
                        "(your application → Bot → Reset Token); Slack's tokens go in SLACK_BOT_TOKEN / SLACK_APP_TOKEN")
    problems.extend(notion_problems(s))
    problems.extend(api_problems(s))
    if s.provider == "offline" and not s._provider_chosen and s.anthropic_base_url:
        problems.append("ANTHROPIC_BASE_URL is set but ANTHROPIC_API_KEY is not, so no model would be used: set the "
                        "key (a local server may take any value), or set ORCHESTRA_PROVIDER=offline to rehearse")
    return problems


#: A Notion id: 32 hex digits, with or without the dashes of a UUID (alone or inside a URL).
NOTION_ID_RE = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE)


def notion_problems(s: Settings) -> list[str]:
    """Notion's two settings come together; the database is an id or a URL holding one."""
    key, db = s.notion_api_key, s.notion_personas_db_id
    if key and not db:
        return ["NOTION_API_KEY is set but NOTION_PERSONAS_DB_ID is not: set it to the personas database's id "
                "(or its URL, copied from Notion), or unset NOTION_API_KEY to keep the personas in YAML"]
    if db and not key:
        return ["NOTION_PERSONAS_DB_ID is set but NOTION_API_KEY is not: set it to your integration's secret "
                "(notion.so/profile/integrations), or unset NOTION_PERSONAS_DB_ID to keep the personas in YAML"]
    if db and not NOTION_ID_RE.search(db):
        return [f"NOTION_PERSONAS_DB_ID: {db[:80]!r} is not a Notion database id or URL: copy the database's URL "
                "from Notion (Share → Copy link), or the 32 characters before ?v= in it"]
    if s.notion_api_url and not s.notion_api_url.startswith(("http://", "https://")):
        return ["NOTION_API_URL must start with http:// or https:// (unset it to use api.notion.com)"]
    return []


def api_problems(s: Settings) -> list[str]:
    """A read token alone would leave the API off (404) while someone believes it is on."""
    write, read = s.api_token, s.api_read_token
    if read and not write:
        return ["ORCHESTRA_API_READ_TOKEN is set but ORCHESTRA_API_TOKEN is not: the API is on only with the "
                "read-write token; set ORCHESTRA_API_TOKEN too (e.g. `openssl rand -hex 32`), or unset "
                "ORCHESTRA_API_READ_TOKEN"]
    if read and write and read.get_secret_value() == write.get_secret_value():
        return ["ORCHESTRA_API_READ_TOKEN is the same as ORCHESTRA_API_TOKEN: give the read-only token its own value"]
    return []
