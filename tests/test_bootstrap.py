"""The composition root: a real SQLite file, the offline provider, small fakes for our own ports."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import time
from importlib import resources

import pytest

from adapters.terminal import TerminalShell
from bot.bootstrap import App, StartupError, bootstrap, persona_engine
from bot.logs import configure_logging, scrub
from bot.platforms import DiscordPlatform, SlackPlatform, build_platforms, verify_platforms
from bot.preflight import check_can_start, stdin_missing
from bot.settings import SettingsError, load_settings
from engine.memory.store import SQLiteMemory
from engine.models import Task
from engine.personas import PersonaConfigError
from tests.fakes import FakeOutbox, ScriptedProvider

from tests.settings_env import clean_settings_env  # noqa: F401 - autouse: no settings from this machine




def settings_for(tmp_path, **overrides):
    return load_settings(db=tmp_path / "memory.db", **overrides)


def task(text: str, n: int = 1, **extra) -> Task:
    fields = dict(platform="local", workspace="local", channel="terminal", user="ada", text=text,
                  event_id=f"local:{n}", message_id=f"m{n}", thread=f"m{n}")
    fields.update(extra)
    return Task(**fields)


async def test_bootstrap_builds_a_working_offline_engine(tmp_path):
    app = await bootstrap(settings_for(tmp_path, max_turns=6, max_auto_turns=3, context_tokens=4000))
    try:
        assert isinstance(app, App)
        assert app.provider.name == "offline"
        assert (tmp_path / "memory.db").exists()
        assert app.engine.config.max_turns == 6 and app.engine.config.max_auto_turns == 3
        assert app.engine.config.context_tokens == 4000
        assert app.engine.config.cast == {"researcher": "sophia", "critic": "karen", "planner": "cherry"}
        outbox = FakeOutbox()
        app.engine.register_outbox("local", outbox)
        assert await app.engine.start() == 0
        rec = await app.engine.run(task("sophia, why did signups drop?"))
        assert rec is not None and rec.lead == "sophia"
        (answer,) = [r for r in outbox.posts if r.kind.value == "answer"]
        assert answer.offline and answer.voice.name == "sophia"
    finally:
        await app.aclose()
    reopened = await SQLiteMemory.open(tmp_path / "memory.db")  # closed cleanly, and kept
    try:
        assert [t.id for t in await reopened.list_threads("local", "local", "terminal")] == [rec.id]
    finally:
        await reopened.close()


async def test_cast_naming_an_unknown_persona_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError) as excinfo:
        await bootstrap(settings_for(tmp_path, critic="bob"))
    text = str(excinfo.value)
    assert "ORCHESTRA_CRITIC" in text and "'bob'" in text and "sophia" in text
    assert not (tmp_path / "memory.db").exists(), "checked before anything is opened"


async def test_cast_accepts_display_names(tmp_path):
    app = await bootstrap(settings_for(tmp_path, researcher="Karen"))
    try:
        assert app.engine.config.cast["researcher"] == "karen"
    finally:
        await app.aclose()


async def test_personas_from_a_file(tmp_path):
    defaults = resources.files("engine.personas").joinpath("defaults.yaml").read_text("utf-8")
    text = defaults.replace("display_name: Karen", "display_name: Karina")
    custom = tmp_path / "personas.yaml"
    custom.write_text(text, encoding="utf-8")
    app = await bootstrap(settings_for(tmp_path, personas_file=custom))
    try:
        assert app.personas["karen"].display_name == "Karina"
    finally:
        await app.aclose()

    broken = tmp_path / "broken.yaml"
    broken.write_text("sophia:\n  display_name: Sophia\n", encoding="utf-8")
    with pytest.raises(PersonaConfigError) as excinfo:
        await bootstrap(settings_for(tmp_path, personas_file=broken))
    assert "broken.yaml" in str(excinfo.value)


def test_persona_engine_opens_no_memory(tmp_path):
    engine = persona_engine(settings_for(tmp_path))
    assert "Sophia" in engine.personas_overview()
    assert "speaks as researcher" in engine.persona_card("sophia")
    assert not (tmp_path / "memory.db").exists()


async def test_without_chat_tokens_the_terminal_is_the_platform(tmp_path):
    app = await bootstrap(settings_for(tmp_path))
    try:
        (platform,) = build_platforms(app, channel="ops", stdin=io.StringIO(""), stdout=io.StringIO())
        assert isinstance(platform, TerminalShell)
        assert platform.channel == "ops"
        assert app.engine.poster.outboxes["local"] is platform.outbox
    finally:
        await app.aclose()


async def test_slack_is_built_when_configured(tmp_path):
    socket = await bootstrap(settings_for(tmp_path, slack_bot_token="xoxb-1-test", slack_app_token="xapp-1-test"))
    try:
        (platform,) = build_platforms(socket)
        assert isinstance(platform, SlackPlatform) and platform.http_port is None
        assert "Socket Mode" in platform.description
        assert socket.engine.poster.outboxes["slack"] is platform.adapter.outbox
        assert "local" not in socket.engine.poster.outboxes
    finally:
        await socket.aclose()
    http = await bootstrap(settings_for(tmp_path, slack_bot_token="xoxb-1-test", slack_signing_secret="s3cret"))
    try:
        (platform,) = build_platforms(http, slack_http=True, port=3456)
        assert platform.http_port == 3456 and "port 3456" in platform.description
    finally:
        await http.aclose()


async def test_discord_is_built_when_configured(tmp_path):
    pytest.importorskip("discord")
    app = await bootstrap(settings_for(tmp_path, discord_token="discord-token-1"))
    try:
        (platform,) = build_platforms(app)
        assert isinstance(platform, DiscordPlatform) and platform.name == "discord"
        assert app.engine.poster.outboxes["discord"] is platform.adapter.outbox
        assert "local" not in app.engine.poster.outboxes
    finally:
        await app.aclose()
    assert platform.adapter.client.is_closed()  # closed with the app, after the engine's last posts


async def test_slack_and_discord_run_side_by_side_on_one_engine(tmp_path):
    pytest.importorskip("discord")
    app = await bootstrap(settings_for(tmp_path, slack_bot_token="xoxb-1-test", slack_app_token="xapp-1-test",
                                       discord_token="discord-token-1"))
    try:
        slack, discord_ = build_platforms(app)
        assert (slack.name, discord_.name) == ("slack", "discord")
        assert slack.adapter.engine is discord_.adapter.engine is app.engine
        assert set(app.engine.poster.outboxes) == {"slack", "discord"}
    finally:
        await slack.stop()
        await app.aclose()


async def test_a_missing_discord_library_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "discord", None)  # as if discord.py were not installed
    monkeypatch.delitem(sys.modules, "adapters.discord.app", raising=False)
    app = await bootstrap(settings_for(tmp_path, discord_token="discord-token-1"))
    try:
        with pytest.raises(StartupError) as excinfo:
            build_platforms(app)
    finally:
        await app.aclose()
    assert excinfo.value.exit_code == 2
    assert "Discord is configured but its libraries are missing (discord)" in str(excinfo.value)
    assert "orchestra-personas[discord]" in str(excinfo.value)


async def test_discord_token_is_checked_before_anything_connects_then_says_who_we_are(tmp_path):
    pytest.importorskip("discord")
    from tests.servers.discord_api import TOKEN, DiscordServer

    server = await DiscordServer().start()
    lines: list[str] = []
    try:
        bad = await bootstrap(settings_for(tmp_path, discord_token="not-the-token", discord_api_url=server.api_url,
                                           discord_gateway_url=server.gateway_url))
        try:
            platforms = build_platforms(bad, announce=lines.append)
            with pytest.raises(StartupError, match="Discord refused DISCORD_TOKEN") as excinfo:
                await verify_platforms(platforms)
            assert excinfo.value.exit_code == 2
        finally:
            await platforms[0].stop()
            await bad.aclose()
        assert server.gateway.identifies == [] and lines == []  # nothing connected, nothing announced

        good = await bootstrap(settings_for(tmp_path, discord_token=TOKEN, discord_api_url=server.api_url,
                                            discord_gateway_url=server.gateway_url))
        (platform,) = build_platforms(good, announce=lines.append)
        await verify_platforms([platform])
        runner = asyncio.create_task(platform.run())
        try:
            await server.wait_for(lambda: lines, timeout=10)
        finally:
            await platform.stop()
            await asyncio.wait_for(runner, 5)  # stopped on purpose: returns, no error
            await good.aclose()
        assert lines == ["Discord: connected as @orchestra (1 server)"]
        assert platform.adapter.client.is_closed()
    finally:
        await server.stop()


async def test_slack_http_without_its_credentials_is_refused(tmp_path):
    app = await bootstrap(settings_for(tmp_path, slack_bot_token="xoxb-1-test", slack_app_token="xapp-1-test"))
    try:
        with pytest.raises(StartupError, match="SLACK_SIGNING_SECRET"):
            build_platforms(app, slack_http=True)
    finally:
        await app.aclose()


async def test_outboxes_exist_before_start_so_unfinished_work_resumes(tmp_path):
    settings = settings_for(tmp_path)
    app = await bootstrap(settings)
    await app.memory.accept_task(task("@sophia is the nightly export late again?", n=7))  # then a crash
    await app.aclose()

    app = await bootstrap(settings)
    out = io.StringIO()
    try:
        build_platforms(app, stdin=io.StringIO(""), stdout=out)
        assert await app.engine.start() == 1
        await app.engine.wait_idle()
    finally:
        await app.aclose()
    assert "Sophia" in out.getvalue() and "nightly export" in out.getvalue()


async def test_aclose_with_grace_cuts_slow_work_short_and_it_resumes_later(tmp_path):
    settings = settings_for(tmp_path)
    app = await bootstrap(settings, provider=ScriptedProvider("slow answer", delay=30))
    app.engine.register_outbox("local", FakeOutbox())
    await app.engine.submit(task("@sophia take your time"))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await app.aclose(grace=0.2)
    assert time.monotonic() - started < 5

    memory = await SQLiteMemory.open(settings.db)
    try:
        assert len(await memory.unfinished_tasks()) == 1
    finally:
        await memory.close()


def test_logs_never_show_tokens(tmp_path):
    settings = settings_for(tmp_path, anthropic_api_key="plainsecretvalue42", log_level="INFO")
    stream = io.StringIO()
    configure_logging(settings, stream)
    try:
        log = logging.getLogger("orchestra.test")
        log.info("calling with %s and %s", "xoxb-123-456-abcdefABCDEF", "sk-ant-api03-abcdefghijkl")
        log.warning("key plainsecretvalue42 app xapp-1-A0B1C2D3E4 openai sk-proj-abcdefghijkl")
        try:
            raise RuntimeError("token xoxb-999-888-zzzzzzzz rejected")
        except RuntimeError:
            log.exception("boom")
    finally:
        logging.getLogger().handlers.clear()
    text = stream.getvalue()
    for secret in ("abcdefABCDEF", "abcdefghijkl", "plainsecretvalue42", "A0B1C2D3E4", "zzzzzzzz"):
        assert secret not in text
    assert "xoxb-[redacted]" in text and "sk-ant-[redacted]" in text and "[redacted]" in text
    assert "calling with" in text and "RuntimeError" in text


def test_scrub_leaves_ordinary_text_alone():
    assert scrub("task-12 ask-me sk-short and xoxb") == "task-12 ask-me sk-short and xoxb"


# --- start-up checks ----------------------------------------------------------------------------


def test_a_start_with_no_platform_needs_a_terminal_or_input(tmp_path):
    settings = settings_for(tmp_path)
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.write_text("", encoding="utf-8")
    full.write_text("@sophia hi\n", encoding="utf-8")
    read, write = os.pipe()
    fds = {name: os.open(path, os.O_RDONLY) for name, path in (("null", os.devnull), ("empty", empty), ("full", full))}
    try:
        for name in ("null", "empty"):
            with pytest.raises(StartupError, match="no chat platform is configured") as excinfo:
                check_can_start(settings, slack_http=False, stdin_fd=fds[name])
            assert excinfo.value.exit_code == 2
        check_can_start(settings, slack_http=False, stdin_fd=fds["full"])
        check_can_start(settings, slack_http=False, stdin_fd=read)  # a pipe: lines may come
        slack = settings_for(tmp_path, slack_bot_token="xoxb-1-test", slack_app_token="xapp-1-test")
        check_can_start(slack, slack_http=False, stdin_fd=fds["null"])  # a service: Slack is the platform
        discord_ = settings_for(tmp_path, discord_token="discord-token-1")
        check_can_start(discord_, slack_http=False, stdin_fd=fds["null"])  # ... or Discord
        with pytest.raises(StartupError, match="--slack-http needs"):
            check_can_start(slack, slack_http=True, stdin_fd=fds["null"])
    finally:
        for fd in (*fds.values(), read, write):
            os.close(fd)
    assert stdin_missing(-1) == "standard input is closed"


async def test_slack_tokens_are_checked_before_anything_connects(tmp_path):
    from tests.servers.slack_api import SlackApiServer

    api = await SlackApiServer(bot_token="xoxb-1-good", app_token="xapp-1-good").start()
    lines: list[str] = []
    try:
        for bot, app, code in (("xoxb-1-bad", "xapp-1-good", "auth.test: invalid_auth"),
                               ("xoxb-1-good", "xapp-1-bad", "apps.connections.open: invalid_auth")):
            app_ = await bootstrap(settings_for(tmp_path, slack_bot_token=bot, slack_app_token=app, slack_api_url=api.api_url))
            try:
                platforms = build_platforms(app_, announce=lines.append)
                with pytest.raises(StartupError, match=re.escape(code)) as excinfo:
                    await verify_platforms(platforms)
                assert excinfo.value.exit_code == 2
            finally:
                await platforms[0].stop()
                await app_.aclose()
        assert not api._sockets and lines == []  # nothing connected, nothing announced

        good = await bootstrap(settings_for(tmp_path, slack_bot_token="xoxb-1-good", slack_app_token="xapp-1-good",
                                            slack_api_url=api.api_url))
        (platform,) = build_platforms(good, announce=lines.append)
        await verify_platforms([platform])
        runner = asyncio.create_task(platform.run())
        try:
            await api.wait_connected(timeout=10)
            while not lines:
                await asyncio.sleep(0.01)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await platform.stop()
            await good.aclose()
        assert lines == ["Slack: connected to Orchestra Test (workspace T0TEAM) as @orchestra (Socket Mode)"]
        assert [c.method for c in api.calls if c.status == 200][-2:] == ["auth.test", "apps.connections.open"]
    finally:
        await api.stop()


async def test_a_memory_path_that_is_a_directory_is_named(tmp_path):
    with pytest.raises(SettingsError, match="ORCHESTRA_DB=.* is a directory"):
        await bootstrap(load_settings(db=tmp_path))
