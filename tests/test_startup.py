"""Starting `orchestra` as people do, and every way that start can go wrong: a real process,
the local Slack stand-in (which accepts only its own tokens, as Slack does), real files.

What a person must get is one message naming the setting and what to do, exit code 2 for a
mistake to fix, no traceback, nothing half-started; and, when all is well, one line saying
where it is connected.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sqlite3
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest
import pytest_asyncio

from tests.servers.slack_api import TEAM, SlackApiServer
from tests.test_cli import ROOT, clean_env, orchestra

BOT_TOKEN = "xoxb-0000-startup-bot-token"
APP_TOKEN = "xapp-1-startup-app-token"
SIGNING_SECRET = "startup-signing-secret"


@pytest_asyncio.fixture
async def slack():
    server = await SlackApiServer(bot_token=BOT_TOKEN, app_token=APP_TOKEN).start()
    yield server
    await server.stop()


def slack_env(tmp_path: Path, slack: SlackApiServer, **extra: str) -> dict[str, str]:
    return clean_env(tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN, SLACK_API_URL=slack.api_url, **extra)


async def start(tmp_path: Path, *args: str, env: dict[str, str], stdin=asyncio.subprocess.DEVNULL):
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=tmp_path, env=env,
        stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def finished(tmp_path: Path, *args: str, env: dict[str, str], **kw) -> tuple[int, str, str]:
    """Run to the end (a start-up that fails ends by itself, quickly)."""
    proc = await start(tmp_path, *args, env=env, **kw)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out.decode(), err.decode()


async def read_until(proc, pattern: str, timeout: float = 30) -> str:
    """stdout up to (and including) the first line matching `pattern`."""
    seen = ""
    async def lines() -> str:
        nonlocal seen
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"output ended before {pattern!r}: {seen}")
            seen += line
            if re.search(pattern, line):
                return seen
    return await asyncio.wait_for(lines(), timeout)


async def stop(proc) -> tuple[int, str, str]:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    return proc.returncode, out.decode(), err.decode()


def one_clean_message(err: str) -> str:
    """stderr holds one message from us: no traceback, no log lines, no library chatter."""
    assert "Traceback" not in err and " ERROR " not in err and " WARNING " not in err, err
    assert err.startswith("orchestra: ") and err.count("orchestra: ") == 1, err
    return err


# --- 1. the distribution is orchestra-personas; the command stays orchestra ----------------------


def test_the_distribution_is_orchestra_personas_and_every_install_line_installs_it(tmp_path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "orchestra-personas"
    assert project["scripts"] == {"orchestra": "bot.cli:main"}
    for extra in ("platforms", "all", "test"):
        selves = [r for r in project["optional-dependencies"][extra] if r.startswith("orchestra")]
        assert selves and all(r.startswith("orchestra-personas[") for r in selves), (extra, selves)

    version = orchestra(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"orchestra {project['version']}"

    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bot" / "bootstrap.py"]
    installs = [
        (doc.name, m.group(1))
        for doc in docs
        for m in re.finditer(r"pip install\s+(?:-e\s+)?'?\"?([^\s'\"]+)", doc.read_text(encoding="utf-8"))
    ]
    assert installs
    for doc, target in installs:
        assert target.startswith((".[", "orchestra-personas[")) or target == ".", (doc, target)


# --- 2. configuration mistakes: exit 2, one message, the setting named -----------------------------


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("missing.yaml", None, "no such file"),
        ("broken.yaml", "max_turns: 12\nresearcher: [sophia\n", "not valid YAML at line 3"),
        ("list.yaml", "- max_turns: 12\n", "must be a mapping"),
    ],
)
async def test_a_config_file_that_cannot_be_used_stops_start_up(tmp_path, name, content, said):
    if content is not None:
        (tmp_path / name).write_text(content, encoding="utf-8")
    code, out, err = await finished(tmp_path, env=clean_env(tmp_path, ORCHESTRA_CONFIG=name), stdin=asyncio.subprocess.PIPE)
    assert code == 2 and out == ""
    one_clean_message(err)
    assert f"ORCHESTRA_CONFIG={name}" in err and str(tmp_path / name) in err and said in err
    assert not (tmp_path / "memory.db").exists()


@pytest.mark.parametrize(
    ("tokens", "said"),
    [
        ({"SLACK_APP_TOKEN": APP_TOKEN}, "SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not"),
        ({"SLACK_BOT_TOKEN": BOT_TOKEN}, "SLACK_BOT_TOKEN is set alone"),
        ({"SLACK_SIGNING_SECRET": SIGNING_SECRET}, "SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not"),
        ({"SLACK_BOT_TOKEN": APP_TOKEN, "SLACK_APP_TOKEN": BOT_TOKEN}, "are swapped"),
    ],
)
async def test_half_set_or_swapped_slack_credentials_stop_start_up(tmp_path, tokens, said):
    code, out, err = await finished(tmp_path, env=clean_env(tmp_path, **tokens), stdin=asyncio.subprocess.PIPE)
    assert code == 2 and out == ""
    one_clean_message(err)
    assert said in err
    for token in (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET):
        assert token not in err


async def test_slack_http_without_a_signing_secret_stops_before_anything_opens(tmp_path):
    env = clean_env(tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN)
    code, out, err = await finished(tmp_path, "--slack-http", env=env)
    assert code == 2 and out == ""
    assert "--slack-http needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET" in one_clean_message(err)
    assert not (tmp_path / "memory.db").exists()


def test_choices_are_taken_in_any_case(tmp_path):
    env = clean_env(tmp_path, ORCHESTRA_PROVIDER="OpenAI", OPENAI_BASE_URL="http://127.0.0.1:9/v1",
                    ORCHESTRA_LOG_LEVEL="info", ORCHESTRA_CRITIC="KAREN", ORCHESTRA_RESEARCHER=" Sophia")
    result = orchestra(tmp_path, "personas", "list", env=env)
    assert result.returncode == 0, result.stderr
    assert "Sophia" in result.stdout


@pytest.mark.parametrize("port", ["0", "70000"])
def test_a_port_that_is_not_one_is_refused(tmp_path, port):
    result = orchestra(tmp_path, "--slack-http", "--port", port, input="")
    assert result.returncode == 2 and "--port" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("make", "said"), [("dir", "is a directory"), ("garbage", "cannot use")])
def test_a_memory_file_that_cannot_be_used_is_named(tmp_path, make, said):
    db = tmp_path / "memory.db"
    if make == "dir":
        db.mkdir()
    else:
        db.write_text("not a database\n" * 100, encoding="utf-8")
    result = orchestra(tmp_path, "memory", "list", "--channel", "ops")
    assert result.returncode == 2 and result.stdout == ""
    assert "ORCHESTRA_DB" in one_clean_message(result.stderr) and said in result.stderr


def test_a_memory_file_from_a_newer_orchestra_says_to_upgrade(tmp_path):
    db = tmp_path / "memory.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 99")
    con.close()
    result = orchestra(tmp_path, "memory", "list", "--channel", "ops")
    assert result.returncode == 2 and result.stdout == ""
    err = one_clean_message(result.stderr)
    assert "ORCHESTRA_DB" in err and "newer Orchestra" in err and "upgrade" in err
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 99  # nothing was migrated away
    con.close()


# --- no chat platform and no terminal ---------------------------------------------------------------


@pytest.mark.parametrize("stdin", ["devnull", "empty file", "closed"])
async def test_no_platform_and_no_terminal_says_what_to_set_and_exits_2(tmp_path, stdin):
    kw: dict = {}
    if stdin == "devnull":
        kw["stdin"] = asyncio.subprocess.DEVNULL
    elif stdin == "empty file":
        (tmp_path / "empty").write_text("", encoding="utf-8")
        kw["stdin"] = open(tmp_path / "empty", "rb")  # noqa: SIM115 - closed with the process
    else:  # the child closes its descriptor 0 before starting
        kw["stdin"] = asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import os, sys; os.close(0) if sys.argv[1] == 'closed' else None; "
        "from bot.cli import main; sys.exit(main([]))", stdin, cwd=tmp_path, env=clean_env(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **kw,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2 and out == b""
    text = one_clean_message(err.decode())
    assert "no chat platform is configured" in text and "no terminal" in text
    assert "SLACK_BOT_TOKEN" in text and "SLACK_APP_TOKEN" in text and "terminal" in text
    assert not (tmp_path / "memory.db").exists()


async def test_a_refused_discord_token_exits_2_with_its_name_before_the_banner(tmp_path):
    pytest.importorskip("discord")
    from tests.servers.discord_api import DiscordServer

    server = await DiscordServer().start()
    try:
        env = clean_env(tmp_path, DISCORD_TOKEN="discord-startup-token", DISCORD_API_URL=server.url,
                        DISCORD_GATEWAY_URL=server.gateway_url)
        code, out, err = await finished(tmp_path, env=env)
    finally:
        await server.stop()
    assert code == 2 and out == ""  # no banner: nothing started
    assert "Discord refused DISCORD_TOKEN" in one_clean_message(err)
    assert "discord-startup-token" not in err and server.gateway.identifies == []


# Lines piped into `orchestra` still make a chat: tests/test_terminal.py.


# --- 3. Slack: tokens checked before connecting; one line when connected ----------------------------


async def test_socket_mode_connects_and_says_so_on_one_line_with_nothing_on_stderr(tmp_path, slack):
    proc = await start(tmp_path, env=slack_env(tmp_path, slack))  # default log level
    try:
        seen = await read_until(proc, r"^Slack: connected")
        await slack.wait_connected(timeout=10)
    finally:
        code, out, err = await stop(proc)
    line = seen.splitlines()[-1]
    assert line == f"Slack: connected to Orchestra Test (workspace {TEAM}) as @orchestra (Socket Mode)"
    assert code == 0 and err == "", err  # no "'token' will be unused", nothing else
    assert [c.method for c in slack.calls][:2] == ["auth.test", "apps.connections.open"]
    assert len(slack.of("apps.connections.open")) == 1  # the URL checked at start is the one used


async def test_slack_and_discord_run_in_one_process_and_stop_together(tmp_path, slack):
    from tests.servers.discord_api import TOKEN, DiscordServer

    discord_ = await DiscordServer().start()
    env = slack_env(tmp_path, slack, DISCORD_TOKEN=TOKEN, DISCORD_API_URL=discord_.url,
                    DISCORD_GATEWAY_URL=discord_.gateway_url)
    proc = await start(tmp_path, env=env)
    try:
        seen = await read_until(proc, r"^Platforms: ")
        seen += await read_until(proc, r"^(Slack|Discord): connected")
        seen += await read_until(proc, r"^(Slack|Discord): connected")
    finally:
        code, out, err = await stop(proc)
        await discord_.stop()
    assert "Platforms: Slack (Socket Mode), Discord (gateway)" in seen
    assert "Discord: connected as @orchestra (1 server)" in seen and "Slack: connected to Orchestra Test" in seen
    assert code == 0 and err == "", err
    assert len(discord_.gateway.identifies) == 1 and discord_.gateway.identifies[0]["token"] == TOKEN


async def test_when_discord_ends_with_an_error_slack_stops_too(tmp_path, slack):
    from tests.servers.discord_api import TOKEN, DiscordServer

    discord_ = await DiscordServer(allowed_intents=0).start()  # Message Content off in the portal
    env = slack_env(tmp_path, slack, DISCORD_TOKEN=TOKEN, DISCORD_API_URL=discord_.url,
                    DISCORD_GATEWAY_URL=discord_.gateway_url)
    try:
        code, out, err = await finished(tmp_path, env=env)
    finally:
        await discord_.stop()
    assert code == 2
    assert "Message Content Intent" in one_clean_message(err) and "DISCORD_MESSAGE_CONTENT=false" in err
    assert TOKEN not in out + err


@pytest.mark.parametrize(
    ("env", "setting", "said", "method"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-0000-wrong"}, "SLACK_BOT_TOKEN", "invalid_auth", "auth.test"),
        ({"SLACK_APP_TOKEN": "xapp-1-wrong"}, "SLACK_APP_TOKEN", "invalid_auth", "apps.connections.open"),
    ],
)
async def test_a_token_slack_refuses_stops_start_up_at_once(tmp_path, slack, env, setting, said, method):
    code, out, err = await finished(tmp_path, env={**slack_env(tmp_path, slack), **env})
    assert code == 2 and out == "", out  # no banner: nothing started
    text = one_clean_message(err)
    assert f"Slack refused {setting} ({method}: {said})" in text
    assert len(slack.of(method, ok_only=False)) == 1  # asked once: no reconnect loop
    for secret in (BOT_TOKEN, APP_TOKEN, *env.values()):
        assert secret not in err


@pytest.mark.parametrize("error", ["token_revoked", "account_inactive"])
async def test_a_revoked_token_names_slack_s_answer(tmp_path, slack, error):
    slack.fail("auth.test", error)
    code, out, err = await finished(tmp_path, env=slack_env(tmp_path, slack))
    assert code == 2 and out == ""
    assert f"Slack refused SLACK_BOT_TOKEN (auth.test: {error})" in one_clean_message(err)
    assert "reinstall the app" in err


async def test_an_app_token_without_connections_write_is_named(tmp_path, slack):
    slack.fail("apps.connections.open", "missing_scope")
    code, _, err = await finished(tmp_path, env=slack_env(tmp_path, slack))
    assert code == 2 and "connections:write" in one_clean_message(err)


async def test_slack_out_of_reach_fails_with_exit_1_and_no_traceback(tmp_path):
    env = clean_env(tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN, SLACK_API_URL=f"http://127.0.0.1:{free_port()}/api/")
    code, out, err = await finished(tmp_path, env=env)
    assert code == 1 and out == ""
    assert "cannot reach Slack" in one_clean_message(err) and "Error" not in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_http_mode_says_where_it_listens_serves_health_and_stops_on_sigterm(tmp_path, slack):
    port = free_port()
    env = slack_env(tmp_path, slack, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    proc = await start(tmp_path, "--slack-http", "--port", str(port), env=env)
    try:
        seen = await read_until(proc, r"^Slack: connected")
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
    finally:
        code, out, err = await stop(proc)
    assert f"Slack (HTTP on port {port}, /slack/events)" in seen
    assert seen.splitlines()[-1] == (
        f"Slack: connected to Orchestra Test (workspace {TEAM}) as @orchestra (HTTP on port {port}, /slack/events)"
    )
    assert body == b"ok" and code == 0 and err == "", err
    for secret in (BOT_TOKEN, SIGNING_SECRET):
        assert secret not in seen + out + err


async def test_http_mode_on_a_port_in_use_says_so(tmp_path, slack):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = slack_env(tmp_path, slack, SLACK_SIGNING_SECRET=SIGNING_SECRET)
        code, _, err = await finished(tmp_path, "--slack-http", "--port", str(port), env=env)
    assert code == 2
    assert f"port {port} is already in use: choose another with --port" in err and "Traceback" not in err


# --- personas: the YAML path never loads Notion -----------------------------------------------------


async def test_without_notion_settings_a_chat_start_imports_no_notion_code(tmp_path):
    """The terminal chat started and ended as a person does; what it imported on the way."""
    code = (
        "import sys\n"
        "from bot.cli import main\n"
        "rc = main([])\n"
        "print('LOADED', sorted(m for m in ('notion_client', 'adapters.notion', 'engine.personas.live', 'ruamel.yaml')"
        " if m in sys.modules))\n"
        "sys.exit(rc)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=tmp_path, env=clean_env(tmp_path), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(b"@sophia hello\n"), timeout=60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "Sophia" in text and "Notion" not in text.split("LOADED")[0]
    assert text.strip().splitlines()[-1] == "LOADED []"


@pytest.mark.parametrize(("value", "said"), [
    ("mysql://orchestra:hunter2@db.internal/orchestra", "scheme 'mysql'"),
    ("postgresql+psycopg://orchestra:hunter2@db.internal/orchestra", "scheme 'postgresql+psycopg'"),
    ("postgresql://orchestra:hunter2@db.internal:5o32/orchestra", "port"),
    ("sqlite://memory.db", "sqlite:///relative/file.db"),
])
def test_a_database_url_orchestra_cannot_use_stops_start_up_and_creates_no_file(tmp_path, value, said):
    """It used to be taken as a file name: a file called `postgresql:` appeared and the bot ran on it.
    (A PostgreSQL URL that Orchestra can use: tests/test_pg_startup.py.)"""
    env = {**clean_env(tmp_path), "ORCHESTRA_DB": value}
    result = orchestra(tmp_path, "memory", "list", "--channel", "ops", env=env)
    assert result.returncode == 2 and result.stdout == ""
    err = one_clean_message(result.stderr)
    assert "ORCHESTRA_DB" in err and said in err
    assert "hunter2" not in result.stderr and "db.internal" not in result.stderr  # a password, a host
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(("postgres", "mysql", "sqlite"))]


def test_a_sqlite_url_names_the_file(tmp_path):
    env = {**clean_env(tmp_path), "ORCHESTRA_DB": "sqlite:///chosen.db"}
    result = orchestra(tmp_path, "investigate", "why are refunds slow?", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "chosen.db").is_file()
