"""Block Kit rendering, splitting within Slack's limits, pacing, and the manifest and guide."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import yaml

from adapters.slack.pacing import ChannelPacer
from adapters.slack.blocks import MAX_BLOCKS, MAX_SECTION_CHARS, MAX_TEXT_CHARS, escape, replace_actions, split_text
from adapters.slack.render import render_reply
from engine.models import Action, Reply, ReplyKind, TaskKind
from engine.personas import PersonaRegistry
from tests.fakes import critique, plan, research

ROOT = Path(__file__).resolve().parent.parent
PERSONAS = PersonaRegistry.defaults()


def reply(**kw: Any) -> Reply:
    base: dict[str, Any] = dict(
        kind=ReplyKind.TURN, voice=PERSONAS["sophia"].voice, platform="slack", workspace="T1", channel="C1", thread="1.1", text="plain"
    )
    base.update(kw)
    return Reply(**base)


def texts(blocks: list[dict[str, Any]]) -> str:
    out = []
    for b in blocks:
        if isinstance(b.get("text"), dict):
            out.append(b["text"]["text"])
        for e in b.get("elements", []):
            t = e.get("text")
            out.append(t if isinstance(t, str) else (t or {}).get("text", ""))
    return "\n".join(out)


# --- findings ---------------------------------------------------------------------------------


def test_a_research_finding_shows_evidence_with_sources_hypothesis_patterns_and_gaps() -> None:
    finding = research("high", gaps=[("which region?", False), ("did anyone deploy on Friday?", True)])
    [msg] = render_reply(reply(mode="researcher", content=finding, title="Sophia · researcher", investigation_id="inv-1"))
    shown = texts(msg.blocks)
    assert msg.blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Sophia · researcher", "emoji": True}}
    assert "401s cluster after 55 minutes — _the person's message_" in shown
    assert "*Hypothesis* · confidence: *high*\ntoken refresh races with checkout" in shown
    assert "• failures repeat hourly" in shown
    assert "did anyone deploy on Friday? _(only you can answer this)_" in shown
    assert "`inv-1`" in shown and ":microscope:" in shown
    assert msg.text.startswith("Sophia: ")


def test_a_critic_finding_shows_challenges_vulnerabilities_alternatives_risks_and_confidence() -> None:
    [msg] = render_reply(reply(mode="critic", content=critique("low"), voice=PERSONAS["karen"].voice))
    shown = texts(msg.blocks)
    for part in ("*:crossed_swords: Challenges*", "no logs from the gateway", "small sample", "clock skew on one node — _hourly pattern_",
                 "CDN caching auth errors", "fixing the wrong thing", "*Remaining confidence:* low"):
        assert part in shown


def test_a_plan_shows_phases_with_steps_and_criteria_timeline_dependencies_risks_and_metrics() -> None:
    [msg] = render_reply(reply(mode="planner", content=plan(), voice=PERSONAS["cherry"].voice))
    shown = texts(msg.blocks)
    assert "*:round_pushpin: Phase 1: Confirm* · _2 days_" in shown
    assert "*Steps*\n• add refresh logging" in shown and "*Success criteria*\n• race seen in logs" in shown
    for part in ("1 week", "gateway team", "logging volume → _sample 10%_", "401 rate &lt; 0.1%"):
        assert part in shown


def test_actions_become_buttons_whose_value_is_the_investigation_id() -> None:
    actions = [
        Action(kind=TaskKind.CHALLENGE, label="Challenge", investigation_id="inv-9"),
        Action(kind=TaskKind.PLAN, label="Move to planning", investigation_id="inv-9"),
        Action(kind=TaskKind.CLOSE, label="Close", investigation_id="inv-9"),
    ]
    [msg] = render_reply(reply(mode="researcher", content=research(), actions=actions))
    assert msg.blocks[-1]["type"] == "actions"
    buttons = msg.blocks[-1]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("orchestra_challenge", "inv-9"), ("orchestra_plan", "inv-9"), ("orchestra_close", "inv-9")
    ]
    assert buttons[1]["style"] == "primary" and buttons[2]["style"] == "danger"


def test_unstructured_and_offline_replies_are_clearly_marked() -> None:
    [raw] = render_reply(reply(mode="critic", structured=False, content=None, text="I think it's the CDN, honestly."))
    assert "Unstructured answer" in texts(raw.blocks) and "I think it's the CDN, honestly." in texts(raw.blocks)

    [offline] = render_reply(reply(kind=ReplyKind.ANSWER, offline=True, text="🧪 Offline rehearsal (no model configured)\nHello"))
    assert offline.blocks[0]["type"] == "context" and "Offline rehearsal" in offline.blocks[0]["elements"][0]["text"]
    assert texts(offline.blocks).count("Offline rehearsal") == 1 and "Hello" in texts(offline.blocks)

    [marked] = render_reply(reply(kind=ReplyKind.ANSWER, offline=True, text="Hello"))
    assert "Offline rehearsal" in texts(marked.blocks)


def test_a_structured_turn_without_content_falls_back_to_its_text() -> None:
    [msg] = render_reply(reply(mode="researcher", content=None, text="Sophia · researcher\nsome words", title="Sophia · researcher"))
    assert "some words" in texts(msg.blocks)
    assert texts(msg.blocks).count("Sophia · researcher") == 1  # the heading is not repeated


def test_text_is_escaped_and_no_slack_syntax_survives_in_it() -> None:
    assert escape("a < b & c > d") == "a &lt; b &amp; c &gt; d"
    assert escape("see <@U123ABC> and <https://x.io/a|docs>") == "see &lt;@U123ABC&gt; and &lt;https://x.io/a|docs&gt;"
    assert escape("<!channel> wake up") == "&lt;!channel&gt; wake up"
    assert escape("&lt;@U1&gt;") == "&amp;lt;@U1&amp;gt;"  # an entity written as text stays text
    assert escape("[bank.com](http://evil.example)") == "bank.com (http://evil.example)"
    assert escape("[https://x.io](https://x.io)") == "https://x.io"
    assert "@here" not in escape("ping @here and @channel") and "here" in escape("@here")


#: Everything a model might write to ping people or relabel a link.
HOSTILE = (
    "hi <@U0BOB> <@W0CAROL> <@U0BOB|bob> <!subteam^S0OPS|@ops> <!here> <!channel> <!everyone> <!here|here> "
    "@here @channel @everyone @Here <#C0SECRET> <http://evil.example|https://bank.com> "
    "<mailto:a@evil.example|support@bank.com> [bank.com](http://evil.example) [docs](<http://evil.example/x>)"
)

_PING_RE = re.compile(r"<[@!#]")
_RELABEL_RE = re.compile(r"<(?!\u2060)[^<>]*\|[^<>]*>")
_MD_LINK_RE = re.compile(r"\[([^\]]*)\]\(([^)]*)\)")
_PLAIN_MASS_RE = re.compile(r"(?<![\w\u2060])@(here|channel|everyone)\b", re.IGNORECASE)


def pings_and_relabels(text: str, *, asker: str | None = None) -> list[str]:
    """What in `text` (read by Slack as mrkdwn or plain_text) would notify someone or show a
    link under a label that is not its target. The asker's own mention is allowed."""
    if asker:
        text = text.replace(f"<@{asker}>", "")
    found = _PING_RE.findall(text) + _RELABEL_RE.findall(text) + _PLAIN_MASS_RE.findall(text)
    found += [m.group(0) for m in _MD_LINK_RE.finditer(text) if m.group(1).strip() != m.group(2).strip()]
    return found


def all_texts(value: Any) -> list[str]:
    """Every string a message carries where Slack shows words: text, blocks, labels."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() if k not in ("action_id", "block_id", "value", "style", "type") for t in all_texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in all_texts(v)]
    return []


def assert_harmless(messages: list[Any], *, asker: str | None = None) -> None:
    for message in messages:
        for text in all_texts(message.text) + all_texts(message.blocks):
            assert pings_and_relabels(text, asker=asker) == [], text


def test_model_output_notifies_nobody_and_relabels_no_link_in_text_or_blocks() -> None:
    content = research()
    content["summary"] = HOSTILE
    content["evidence"] = [{"claim": HOSTILE, "source": HOSTILE}]
    content["hypothesis"] = {"statement": HOSTILE, "confidence": HOSTILE}
    content["gaps"] = [HOSTILE]
    turn = reply(mode="researcher", content=content, text=HOSTILE, title=HOSTILE,
                 actions=[Action(kind=TaskKind.CHALLENGE, label=HOSTILE, investigation_id="inv-1")], asker="U0ALICE")
    unstructured = reply(kind=ReplyKind.ANSWER, text=HOSTILE, structured=False, asker="U0ALICE")
    for kind in ReplyKind:
        messages = render_reply(reply(kind=kind, text=HOSTILE, title=HOSTILE, asker="U0ALICE"))
        assert_harmless(messages)
    for r in (turn, unstructured):
        messages = render_reply(r)
        assert_harmless(messages)
        shown = "\n".join(all_texts(messages[0].blocks))
        assert "bank.com (http://evil.example)" in shown  # what the model wrote is still there, as text
        assert "&lt;@U0BOB&gt;" in shown


def test_the_bot_may_mention_the_person_who_asked_and_nobody_else() -> None:
    [msg] = render_reply(reply(kind=ReplyKind.NOTICE, text="Investigation inv-1 closed by <@U0ALICE>; cc <@U0BOB>", asker="U0ALICE"))
    shown = "\n".join(all_texts(msg.blocks))
    assert "closed by <@U0ALICE>" in shown and "&lt;@U0BOB&gt;" in shown
    assert "<@U0ALICE>" in msg.text and "<@U0BOB>" not in msg.text
    [unasked] = render_reply(reply(kind=ReplyKind.NOTICE, text="closed by <@U0ALICE>"))  # no asker: no mention
    assert "<@U0ALICE>" not in "\n".join(all_texts(unasked.blocks)) + unasked.text


def test_a_mention_of_300_people_is_never_echoed_back_notifying_them() -> None:
    crowd = " ".join(f"<@U{n:06d}>" for n in range(300))
    messages = render_reply(reply(kind=ReplyKind.ANSWER, text=f"you said: {crowd}", asker="U0ALICE"))
    assert_harmless(messages, asker="U0ALICE")
    assert sum(t.count("&lt;@U") for m in messages for t in all_texts(m.blocks)) >= 300


# --- limits -----------------------------------------------------------------------------------


def test_split_text_keeps_every_character_and_respects_the_limit() -> None:
    text = ("lorem ipsum " * 1000) + ("x" * 7000) + "\n\n" + ("tail & end " * 200)
    pieces = split_text(escape(text), 3000)
    assert all(len(p) <= 3000 for p in pieces)
    assert "".join(pieces) == escape(text)
    # a hard cut never splits an entity such as &amp;
    assert all(not p.rstrip().endswith(("&", "&a", "&am", "&amp")) for p in pieces[:-1])


def test_a_huge_finding_is_split_into_messages_within_block_limits() -> None:
    finding = research()
    finding["evidence"] = [{"claim": f"claim {i} " + "detail " * 60, "source": f"log {i}"} for i in range(400)]
    finding["patterns"] = [f"pattern {i}" for i in range(300)]
    actions = [Action(kind=TaskKind.CLOSE, label="Close", investigation_id="inv-1")]
    messages = render_reply(reply(mode="researcher", content=finding, actions=actions))
    assert len(messages) > 2
    for m in messages:
        assert len(m.blocks) <= MAX_BLOCKS and len(m.text) <= MAX_TEXT_CHARS
        assert all(len(b["text"]["text"]) <= MAX_SECTION_CHARS for b in m.blocks if b["type"] == "section")
    everything = "\n".join(texts(m.blocks) for m in messages)
    assert all(f"claim {i} " in everything and f"_log {i}_" in everything for i in range(400))
    assert all(f"pattern {i}" in everything for i in range(300))
    assert messages[-1].blocks[-1]["type"] == "actions" and "continued" in texts(messages[1].blocks[:1])


def test_many_blocks_are_split_at_fifty() -> None:
    finding = plan()
    finding["phases"] = [
        {"name": f"P{i}", "steps": ["s"], "success_criteria": ["c"], "duration": "1d"} for i in range(120)
    ]
    messages = render_reply(reply(mode="planner", content=finding))
    assert len(messages) >= 3 and all(len(m.blocks) <= MAX_BLOCKS for m in messages)
    assert all(f"Phase {i + 1}: P{i}*" in "\n".join(texts(m.blocks) for m in messages) for i in range(120))


# --- pacing -----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_the_pacer_allows_a_burst_then_one_post_per_second_per_channel() -> None:
    clock = FakeClock()
    pacer = ChannelPacer(rate=1.0, burst=3, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(6):
        await pacer.acquire("C1")
        times.append(clock.now)
    assert times == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]
    await pacer.acquire("C2")  # another channel is not held up
    assert clock.now == 3.0


async def test_a_busy_channel_does_not_block_another_one() -> None:
    pacer = ChannelPacer(rate=5.0, burst=1)
    await pacer.acquire("C1")
    slow = asyncio.create_task(pacer.acquire("C1"))  # waits ~0.2 s
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pacer.acquire("C2")
    assert loop.time() - started < 0.05
    assert await slow > 0.1


# --- the manifest and the guide ---------------------------------------------------------------


def test_the_manifest_declares_what_the_adapter_uses_and_no_more() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert manifest["features"]["bot_user"]["display_name"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert scopes == {
        "app_mentions:read", "channels:history", "groups:history", "im:history", "mpim:history", "mpim:read",
        "chat:write", "chat:write.customize", "commands",
    }
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) == {"app_mention", "message.channels", "message.groups", "message.im", "message.mpim"}
    assert settings["interactivity"]["is_enabled"] is True and settings["socket_mode_enabled"] is True
    commands = {c["command"] for c in manifest["features"]["slash_commands"]}
    assert commands == {"/investigate", "/crew", "/personas", "/persona", "/memory", "/forget"}
    assert all(c["description"] and len(c["description"]) <= 100 for c in manifest["features"]["slash_commands"])
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True  # DMs
    # the limits of Slack's manifest schema (slackapi/manifest-schema, v1)
    assert set(manifest) <= {"_metadata", "display_information", "features", "oauth_config", "settings"}
    info = manifest["display_information"]
    assert len(info["name"]) <= 35 and len(info["description"]) <= 140
    assert 175 <= len(info.get("long_description", "x" * 175)) <= 4000
    assert set(settings) <= {"event_subscriptions", "interactivity", "org_deploy_enabled", "socket_mode_enabled", "token_rotation_enabled"}
    assert all(2 <= len(c["command"]) <= 32 and c["command"].startswith("/") for c in manifest["features"]["slash_commands"])


def test_the_guide_names_every_setting_and_command() -> None:
    guide = (ROOT / "docs" / "slack.md").read_text()
    for word in ("manifest.yml", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL",
                 "ORCHESTRA_SLACK_ADMINS", "ORCHESTRA_ALLOWED_CHANNELS", "ORCHESTRA_ALLOWED_USERS",
                 "/investigate", "/personas", "/persona", "/memory", "/forget", "/invite", "/slack/events", "/health"):
        assert word in guide, word


def test_replacing_the_clicked_buttons_keeps_every_other_block() -> None:
    actions = [Action(kind=TaskKind.CHALLENGE, label="Challenge", investigation_id="inv-1")]
    [message] = render_reply(reply(mode="researcher", content=research(), actions=actions, title="Sophia · researcher"))
    theirs = {"type": "actions", "block_id": "other", "elements": [{"type": "button", "action_id": "vote", "text": {"type": "plain_text", "text": "+1"}}]}
    blocks = [*message.blocks, theirs]
    at = next(n for n, b in enumerate(blocks) if b.get("block_id") == "orchestra_actions")

    for block_id in ("orchestra_actions", None, "renamed"):  # by the click's block id, else by our action ids
        taken = replace_actions(blocks, block_id, "↪ Challenge requested by <@U1>")
        assert taken is not None
        assert taken[:at] == blocks[:at] and taken[at + 1 :] == blocks[at + 1 :]
        assert taken[at] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "↪ Challenge requested by <@U1>"}]}
        assert replace_actions(taken, block_id, "again") is None  # nothing of ours left to replace
    assert replace_actions([], "orchestra_actions", "x") is None
