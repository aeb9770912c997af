"""`orchestra` as a real process on Slack: Socket Mode against the local Slack stand-in.

This is the wiring a person gets: the composition root reads SLACK_* from the environment,
builds the adapter, connects, answers a mention as the persona, and stops cleanly on SIGTERM
without printing a token.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.servers.slack_api import event_envelope, mention_event, socket_envelope
from tests.test_slack import APP_TOKEN, BOT_TOKEN, slack_api  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent


async def test_orchestra_answers_a_mention_in_socket_mode_and_stops_cleanly(slack_api, tmp_path) -> None:  # noqa: F811
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": slack_api.api_url,
        "ORCHESTRA_DB": str(tmp_path / "orchestra.db"),
        "ORCHESTRA_LOG_LEVEL": "DEBUG",  # the most talkative setting: still no tokens
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await slack_api.wait_connected(timeout=30)
        event = mention_event("sophia, what should we measure first?")
        envelope_id = await slack_api.send_envelope(socket_envelope("events_api", event_envelope(event)))
        await slack_api.wait_ack(envelope_id, timeout=10)
        update = (await slack_api.wait_for(lambda: slack_api.of("chat.update"), timeout=20))[0]
        [placeholder] = slack_api.posts()
        assert placeholder["username"] == "Sophia" and placeholder["thread_ts"] == event["ts"]
        assert update["ts"] == placeholder.response["ts"] and "Offline rehearsal" in update["text"]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, err.decode()[-2000:]
    assert "chat.update" in err.decode()  # the Web API calls were logged (at DEBUG)
    assert "Socket Mode" in out.decode()
    for secret in (BOT_TOKEN, APP_TOKEN):
        assert secret not in out.decode() and secret not in err.decode()
