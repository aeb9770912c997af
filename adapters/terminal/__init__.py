"""The terminal adapter: chat with the personas in a shell, when no chat platform is configured."""

from adapters.terminal.outbox import PLATFORM, WORKSPACE, TerminalOutbox
from adapters.terminal.render import Style, color_enabled, render_reply
from adapters.terminal.shell import HELP, TerminalShell

__all__ = ["HELP", "PLATFORM", "WORKSPACE", "Style", "TerminalOutbox", "TerminalShell", "color_enabled", "render_reply"]
