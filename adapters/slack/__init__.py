"""Orchestra on Slack (slack-bolt's AsyncApp): mentions, DMs, thread replies, slash commands, buttons.

`SlackAdapter` is imported lazily, so importing this package (or `orchestra --help`) does not
load slack_bolt. Wiring, from the composition root::

    from adapters.slack import SlackAdapter

    slack = SlackAdapter(settings, engine)
    engine.register_outbox("slack", slack.outbox)
    await slack.start_socket_mode()      # or: await slack.start_http(port)
    ...
    await slack.stop()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.slack.app import SlackAdapter
    from adapters.slack.outbox import SlackOutbox

__all__ = ["SlackAdapter", "SlackOutbox"]


def __getattr__(name: str) -> Any:
    if name == "SlackAdapter":
        from adapters.slack.app import SlackAdapter

        return SlackAdapter
    if name == "SlackOutbox":
        from adapters.slack.outbox import SlackOutbox

        return SlackOutbox
    raise AttributeError(f"module 'adapters.slack' has no attribute {name!r}")
