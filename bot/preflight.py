"""Checks made before anything is opened: would this start do anything at all?

`orchestra` under a service manager, with no chat platform configured, would open the terminal
chat on /dev/null, read nothing, and exit 0: a service that "ran" and did nothing. These checks
turn that, and `--slack-http` without its secret, into one message and exit code 2.
"""

from __future__ import annotations

import os
import stat

from bot.bootstrap import StartupError
from bot.settings import Settings

NO_PLATFORM_HELP = """no chat platform is configured, and there is no terminal to chat in ({why}).
  To run on Slack, set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode), or SLACK_BOT_TOKEN and
  SLACK_SIGNING_SECRET and start with --slack-http; see docs/slack.md.
  To run on Discord, set DISCORD_TOKEN; see docs/discord.md.
  To chat in a terminal, run `orchestra` in one, or pipe lines into it: echo "@sophia hi" | orchestra"""


def stdin_missing(fd: int = 0) -> str | None:
    """Why standard input can carry no chat (None: it can). A terminal, a pipe or a file with
    something in it can; /dev/null (a service manager's default), an empty file or a closed
    descriptor cannot, and a chat there would end at once, having done nothing."""
    try:
        if os.isatty(fd):
            return None
        info = os.fstat(fd)
    except OSError:
        return "standard input is closed"
    if stat.S_ISCHR(info.st_mode):
        return "standard input is /dev/null" if _is_devnull(info) else "standard input is not a terminal"
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        return "standard input is an empty file"
    return None


def _is_devnull(info: os.stat_result) -> bool:
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return (info.st_dev, info.st_ino) == (null.st_dev, null.st_ino)


def check_can_start(settings: Settings, *, slack_http: bool, stdin_fd: int = 0) -> None:
    """Refuse now, before anything is opened, a start that could only do nothing: `--slack-http`
    without its credentials, or the terminal chat with no terminal behind standard input."""
    if slack_http and not settings.slack_http_mode:
        raise StartupError("--slack-http needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET "
                           "(Basic Information → App Credentials → Signing Secret)")
    if settings.has_chat_platform:
        return
    why = stdin_missing(stdin_fd)
    if why is not None:
        raise StartupError(NO_PLATFORM_HELP.format(why=why))
