"""How each platform shows the daily digest (engine.jobs.digest): pure rendering, no network."""

from __future__ import annotations

from typing import Any

from adapters.discord.render import render_reply as discord_render
from adapters.slack.render import permalink
from adapters.slack.render import render_reply as slack_render
from adapters.terminal.render import Style
from adapters.terminal.render import render_reply as terminal_render
from engine.models import Reply, ReplyKind
from engine.personas import PersonaRegistry

CHERRY = PersonaRegistry.defaults()["cherry"].voice
HOSTILE = "why <!here> | <https://evil.example|bank> fails?"


def digest(platform: str, workspace: str, channel: str, *items: dict[str, Any]) -> Reply:
    return Reply(
        kind=ReplyKind.NOTICE, voice=CHERRY, platform=platform, workspace=workspace, channel=channel, thread=None,
        text="Cherry here: 2 investigations are open in this channel.\n• payments-1 · paused\n• payments-2 · waiting",
        key="digest:x:C:2026-11-24", content={"digest": list(items)}, title="Open investigations",
    )


def item(id_: str, thread: str, title: str = "why did sign-ups drop?", status: str = "waiting") -> dict[str, Any]:
    return {"id": id_, "title": title, "status": status, "phase": "discovery", "lead": "Sophia", "thread": thread}


def slack_text(reply: Reply, url: str | None) -> str:
    [message] = slack_render(reply, url)
    return "\n".join(b["text"]["text"] if "text" in b else b["elements"][0]["text"] for b in message.blocks)


def test_slack_links_each_question_to_its_thread_without_an_api_call() -> None:
    reply = digest("slack", "T1", "C0PAY", item("payments-1", "1700000001.000100", status="paused"),
                   item("payments-2", "1700000002.000200", title=HOSTILE))
    text = slack_text(reply, "https://acme.slack.com/")
    assert "<https://acme.slack.com/archives/C0PAY/p1700000001000100|why did sign-ups drop?>" in text
    assert "`payments-1`" in text and "paused" in text and "waiting for your answer" in text
    # a person's words never become a mention or a relabelled link
    assert "<!here>" not in text and "<https://evil" not in text and "https://acme.slack.com/archives/C0PAY/p1700000002000200|" in text


def test_slack_without_the_workspace_url_shows_ids_and_questions_unlinked() -> None:
    text = slack_text(digest("slack", "T1", "C0PAY", item("payments-1", "1700000001.000100")), None)
    assert "`payments-1` _why did sign-ups drop?_" in text and "archives" not in text
    assert permalink("javascript:alert(1)//", "C0PAY", "1700000001.000100") is None
    assert permalink("https://acme.slack.com", "C0PAY", "not-a-ts") is None


def test_discord_shows_a_notice_embed_with_thread_links() -> None:
    hostile = item("general-2", "444", title="why [bank](https://evil.example) fails?")
    [post] = discord_render(digest("discord", "111", "222", item("general-1", "333"), hostile), as_webhook=True)
    [embed] = post.embeds
    assert embed.title.endswith("Open investigations in this channel")
    assert "[why did sign-ups drop?](https://discord.com/channels/111/333)" in embed.description
    assert "https://discord.com/channels/111/444" in embed.description and "`general-1`" in embed.description
    assert "](https://evil" not in embed.description  # a person's words never become a masked link


def test_the_terminal_prints_the_digest_text_under_cherry() -> None:
    out = terminal_render(digest("local", "local", "terminal", item("terminal-1", "s.1")), Style(False))
    assert out.splitlines()[0] == "🍒 Cherry · open investigations"
    assert "payments-1 · paused" in out
