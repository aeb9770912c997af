"""Reply → Discord posts: embeds in the persona's colour, Discord's limits, split never cut,
part keys a crash-resumed outbox can read back, and persistent buttons."""

from __future__ import annotations

import re
from typing import Any

import discord
import pytest

from adapters.discord.render import (
    ACTION_CUSTOM_ID_RE,
    PLATFORM,
    DiscordPost,
    action_custom_id,
    action_view,
    colour_of,
    key_of,
    part_key,
    render_placeholder,
    render_reply,
    taken_line,
)
from adapters.safe_text import WORD_JOINER
from engine.models import Action, Reply, ReplyKind, TaskKind, Voice
from engine.personas import PersonaRegistry
from engine.personas.model import COLORS
from tests.fakes import critique, plan, research
from tests.test_discord_translate import THREAD, Gateway

PERSONAS = PersonaRegistry.defaults()
SOPHIA = PERSONAS["sophia"].voice
ACTIONS = [
    Action(kind=TaskKind.CHALLENGE, label="Challenge", investigation_id="payments-1"),
    Action(kind=TaskKind.PLAN, label="Move to planning", investigation_id="payments-1"),
    Action(kind=TaskKind.CLOSE, label="Close", investigation_id="payments-1"),
]


def reply(**kw: Any) -> Reply:
    base: dict[str, Any] = {"kind": ReplyKind.ANSWER, "voice": SOPHIA, "platform": PLATFORM, "workspace": "10",
                            "channel": "20", "thread": "30", "text": "plain", "key": "turn:payments-c1:2"}
    base.update(kw)
    return Reply(**base)


def turn(mode: str, content: dict[str, Any], **kw: Any) -> Reply:
    heading = f"Sophia · {mode}"
    return reply(kind=ReplyKind.TURN, mode=mode, content=content, title=heading, text=f"{heading}\n(plain rendering)",
                 investigation_id="payments-1", key="turn:payments-1:3", actions=ACTIONS, **kw)


def u16(text: str | None) -> int:
    return len((text or "").encode("utf-16-le")) // 2


def assert_within_limits(post: DiscordPost) -> None:
    """What Discord accepts, counted in UTF-16 units (never fewer than characters)."""
    assert u16(post.content) <= 2000
    assert 1 <= len(post.embeds) <= 10
    total = 0
    for e in post.embeds:
        assert u16(e.title) <= 256 and u16(e.description) <= 4096 and len(e.fields) <= 25
        assert u16(e.footer.text) <= 2048
        for f in e.fields:
            assert 1 <= u16(f.name) <= 256 and f.name.strip()
            assert 1 <= u16(f.value) <= 1024 and f.value.strip()
        total += u16(e.title) + u16(e.description) + u16(e.footer.text) + sum(u16(f.name) + u16(f.value) for f in e.fields)
        e.to_dict()  # discord.py can serialise it
    assert total <= 6000


def fields(posts: list[DiscordPost]) -> dict[str, str]:
    """Field name → value (continued fields joined), over every post."""
    out: dict[str, str] = {}
    for post in posts:
        for e in post.embeds:
            for f in e.fields:
                name = f.name.removesuffix(" (continued)")
                out[name] = out.get(name, "") + f.value
    return out


def shown(posts: list[DiscordPost]) -> str:
    """Every description and field value, in order, joined with nothing in between: a text that
    was split across them reads whole again."""
    return "".join((e.description or "") + "".join(f.value for f in e.fields) for p in posts for e in p.embeds)


# --- findings -------------------------------------------------------------------------------


def test_a_research_finding_is_an_embed_in_her_colour_with_evidence_hypothesis_and_gaps() -> None:
    finding = research("high", gaps=[("which region?", False), ("did anyone deploy on Friday?", True)])
    [post] = render_reply(turn("researcher", finding), as_webhook=True)
    assert_within_limits(post)
    [embed] = post.embeds
    assert embed.colour == colour_of(SOPHIA) == discord.Colour(0x1ABC9C)  # Sophia is cyan
    assert embed.title == "Sophia · researcher"
    assert embed.description == "Tokens expire early"
    f = fields([post])
    assert f["🔍 Evidence"] == "• 401s cluster after 55 minutes — *the person's message*"
    assert f["💡 Hypothesis · confidence: high"] == "token refresh races with checkout"
    assert f["🔗 Patterns"] == "• failures repeat hourly"
    assert f["❔ Gaps"] == "• which region?\n• did anyone deploy on Friday? *(only you can answer this)*"
    assert embed.footer.text == "🔬 Sophia · Research · payments-1 · turn:payments-1:3"
    assert post.key == "turn:payments-1:3" and post.actions == ACTIONS and post.content == ""


def test_a_critique_shows_challenges_alternatives_vulnerabilities_risks_and_remaining_confidence() -> None:
    [post] = render_reply(turn("critic", critique("low")), as_webhook=True)
    assert_within_limits(post)
    f = fields([post])
    assert f["⚔️ Challenges"] == "• no logs from the gateway"
    assert f["⚠️ Vulnerabilities"] == "• small sample"
    assert f["🔀 Alternatives"] == "• clock skew on one node — *hourly pattern*\n• CDN caching auth errors — *same URLs*"
    assert f["🚨 Risks"] == "• fixing the wrong thing"
    assert f["Remaining confidence"] == "low"
    assert post.embeds[0].description == "Plausible but unproven"


def test_a_plan_shows_phases_with_success_criteria_timeline_dependencies_risks_and_metrics() -> None:
    [post] = render_reply(turn("planner", plan()), as_webhook=True)
    assert_within_limits(post)
    f = fields([post])
    assert f["📍 Phase 1: Confirm · 2 days"] == "**Steps**\n• add refresh logging\n**Success criteria**\n• race seen in logs"
    assert f["📅 Timeline"] == "1 week"
    assert f["🧩 Dependencies"] == "• gateway team"
    assert f["🛡️ Risks and mitigations"] == "• logging volume → *sample 10%*"
    assert f["📈 Metrics"] == "• 401 rate < 0.1%"


def test_an_unstructured_turn_is_shown_as_written_with_a_note() -> None:
    r = turn("researcher", None, structured=False)
    r = r.model_copy(update={"text": "Sophia · researcher\nI think it is the cache, honestly."})
    [post] = render_reply(r, as_webhook=True)
    assert post.embeds[0].title == "Sophia · researcher"
    assert "⚠️ *Unstructured answer*: it did not fit the researcher format" in shown([post])
    assert shown([post]).endswith("I think it is the cache, honestly.")
    # The engine's own warning is not doubled.
    said = r.model_copy(update={"text": "Sophia · researcher\n⚠️ Unstructured answer: the model's reply did not pass."})
    assert shown(render_reply(said, as_webhook=True)).count("Unstructured answer") == 1


# --- other replies --------------------------------------------------------------------------


def test_a_root_post_names_the_investigation_and_its_cast() -> None:
    text = ("🔎 Investigation payments-1: Why do refunds fail?\nLead: Sophia · Cast: researcher Sophia, critic Karen · "
            "Type: incident\nReply in this thread to add evidence; the personas take it from there.")
    [post] = render_reply(reply(kind=ReplyKind.ROOT, thread=None, text=text, title="Why do refunds fail?",
                                investigation_id="payments-1", key="root:payments-1", asker="2"), as_webhook=True)
    assert_within_limits(post)
    [embed] = post.embeds
    assert embed.title == "🔎 Investigation payments-1: Why do refunds fail?"
    assert embed.description.startswith("Lead: Sophia · Cast: researcher Sophia, critic Karen · Type: incident")
    assert post.content == "<@2>" and key_of_embeds(post) == "root:payments-1"


def test_answers_questions_notices_and_errors_carry_their_text_and_their_kind() -> None:
    [answer] = render_reply(reply(text="Probably the token refresh."), as_webhook=True)
    assert answer.embeds[0].description == "Probably the token refresh." and answer.embeds[0].title is None
    [question] = render_reply(reply(kind=ReplyKind.QUESTION, text="Which region?"), as_webhook=True)
    assert question.embeds[0].title == "🙋 Sophia needs your input" and question.embeds[0].description == "Which region?"
    [error] = render_reply(reply(kind=ReplyKind.ERROR, text="The model is unreachable: try again in a minute."), as_webhook=True)
    assert error.embeds[0].title == "⚠️ Something went wrong"
    [notice] = render_reply(reply(kind=ReplyKind.NOTICE, text="✅ Investigation payments-1 is complete."), as_webhook=True)
    assert notice.embeds[0].description == "✅ Investigation payments-1 is complete."


def test_the_offline_mark_is_shown_once_above_the_answer() -> None:
    [post] = render_reply(reply(text="🧪 Offline rehearsal\nA canned answer.", offline=True), as_webhook=True)
    assert shown([post]) == "*🧪 Offline rehearsal*\nA canned answer." and len(post.embeds) == 1


def test_blank_stretches_never_make_an_empty_embed() -> None:
    text = "a" * 4000 + " " * 3000 + "\n" * 3000 + "b"
    posts = render_reply(reply(text=text), as_webhook=True)
    for p in posts:
        assert_within_limits(p)
        assert all((e.description or "").strip() or e.fields or e.title for e in p.embeds)
    assert "".join(shown(posts).split()) == "a" * 4000 + "b"
    [empty] = render_reply(reply(text="   "), as_webhook=True)
    assert empty.embeds[0].description == "…" and empty.key == "turn:payments-c1:2"


def test_as_the_bot_the_persona_is_named_in_bold_and_the_asker_is_the_only_mention() -> None:
    posts = render_reply(reply(text="x " * 8000, asker="222333444555666777"), as_webhook=False)
    assert len(posts) > 1
    assert posts[0].content == "<@222333444555666777> **Sophia** 🔬"
    assert all(p.content == "**Sophia** 🔬 (continued)" for p in posts[1:])
    as_webhook = render_reply(reply(text="hi", asker="222333444555666777"), as_webhook=True)
    assert as_webhook[0].content == "<@222333444555666777>"
    assert render_reply(reply(text="hi", asker="<@&1> not an id"), as_webhook=True)[0].content == ""
    odd = Voice(name="odd", display_name="<@&5> @everyone", emoji=":x:", emoji_char="🎭")
    assert render_placeholder(odd, "wait:1:1:odd", as_webhook=False).content == f"**<{WORD_JOINER}@&5> @{WORD_JOINER}everyone** 🎭"


def test_model_output_pings_nobody_and_relabels_no_link() -> None:
    r = reply(text="@everyone @here look at [bank.com](http://evil.example) <@&99>", asker="2")
    [post] = render_reply(r, as_webhook=False)
    text = shown([post])
    assert "@everyone" not in text and "@here" not in text and f"@{WORD_JOINER}everyone" in text
    assert "bank.com (http://evil.example)" in text
    assert "<@&99>" not in post.content and "everyone" not in post.content  # embeds never notify; content is ours


def test_a_placeholder_is_her_thinking_line_with_its_key() -> None:
    post = render_placeholder(SOPHIA, "wait:7:1:sophia", as_webhook=False)
    assert post.content == "**Sophia** 🔬" and post.key == "wait:7:1:sophia" and post.actions == []
    assert post.embeds[0].description == "*Sophia is thinking…*"
    assert key_of_embeds(post) == "wait:7:1:sophia"
    assert render_placeholder(SOPHIA, "wait:7:1:sophia", as_webhook=True).content == ""


# --- limits: split, never cut ---------------------------------------------------------------


def test_a_40000_character_answer_is_split_across_messages_and_loses_nothing() -> None:
    words = "".join(f"word{n} " + ("\n\n" if n % 97 == 0 else "") for n in range(7000))[:40_000]
    r = reply(text=words, key="turn:payments-c1:2", actions=ACTIONS)
    posts = render_reply(r, as_webhook=False)
    assert len(posts) >= 7
    for p in posts:
        assert_within_limits(p)
    assert shown(posts) == words  # every character, in order
    assert [p.key for p in posts] == [part_key(r.key, i) for i in range(len(posts))]
    assert [p.actions for p in posts] == [[]] * (len(posts) - 1) + [ACTIONS]
    assert [key_of_embeds(p) for p in posts] == [p.key for p in posts]


def test_a_text_without_spaces_and_with_wide_characters_still_fits() -> None:
    text = "🔥" * 20_000 + "x" * 20_000  # 🔥 counts twice in UTF-16; no place to break softly
    posts = render_reply(reply(text=text), as_webhook=True)
    for p in posts:
        assert_within_limits(p)
    assert shown(posts) == text


def test_a_huge_finding_keeps_every_item_across_fields_embeds_and_messages() -> None:
    items = [f"claim {n} " + "because " * 60 + f"end{n}" for n in range(120)]
    finding = {
        "summary": "S" * 5000,
        "evidence": [{"claim": c, "source": f"log {n}"} for n, c in enumerate(items)],
        "patterns": [f"pattern {n}" for n in range(60)],
        "hypothesis": {"statement": "H " * 1500, "confidence": "medium"},
        "gaps": [{"question": "Q" * 2000, "needs_people": True}],
    }
    posts = render_reply(turn("researcher", finding), as_webhook=True)
    assert len(posts) > 1
    for p in posts:
        assert_within_limits(p)
    text = shown(posts)
    assert "S" * 5000 in text and ("H " * 1500).strip() in text and "Q" * 2000 in text
    for n, claim in enumerate(items):
        assert f"• {claim} — *log {n}*" in text
    for n in range(60):
        assert f"• pattern {n}" in text
    assert posts[0].embeds[0].title == "Sophia · researcher" and posts[-1].actions == ACTIONS


def test_a_plan_with_a_huge_phase_name_and_many_phases_keeps_them_all() -> None:
    big = plan()
    big["phases"] = [{"name": f"phase-name-{n} " + "long " * 80, "steps": [f"step {n}.{k}" for k in range(30)],
                      "success_criteria": [f"criterion {n}"], "duration": "1 day"} for n in range(40)]
    posts = render_reply(turn("planner", big), as_webhook=True)
    for p in posts:
        assert_within_limits(p)
    text = shown(posts)
    for n in range(40):
        assert f"phase-name-{n} " + "long " * 79 + "long" in text  # a name too long for a field name: in the value
        assert f"• step {n}.29" in text and f"• criterion {n}" in text


def test_a_title_longer_than_discord_allows_is_shown_whole_below_a_short_one() -> None:
    title = "Why " * 100
    [post] = render_reply(reply(kind=ReplyKind.TURN, title=title, text=f"{title}\nbody"), as_webhook=True)
    assert_within_limits(post)
    assert post.embeds[0].title.endswith("…") and title in post.embeds[0].description


# --- keys, colours, buttons -----------------------------------------------------------------


def key_of_embeds(post: DiscordPost) -> str | None:
    """`key_of` on the message Discord would give back for this post (MESSAGE_CREATE payload)."""
    gw = Gateway()
    message = gw.message("", mid=900, channel=THREAD, webhook_id="900", author={"id": "900", "username": "Sophia",
                         "discriminator": "0000", "avatar": None}, embeds=[e.to_dict() for e in post.embeds])
    return key_of(message)


def test_key_of_reads_the_part_key_back_from_a_discord_message() -> None:
    assert part_key("turn:payments-1:3", 0) == "turn:payments-1:3"
    assert part_key("turn:payments-1:3", 2) == "turn:payments-1:3#3"
    assert part_key("", 3) == ""
    [post] = render_reply(turn("critic", critique()), as_webhook=True)
    assert key_of_embeds(post) == "turn:payments-1:3"
    keyless = render_reply(reply(text="hi", key=""), as_webhook=True)[0]
    assert keyless.key == "" and key_of_embeds(keyless) is None
    theirs = DiscordPost(content="", embeds=[discord.Embed(description="x").set_footer(text="Powered by · Somebody else")],
                         actions=[], key="")
    assert key_of_embeds(theirs) is None
    nothing = DiscordPost(content="", embeds=[], actions=[], key="")
    assert key_of_embeds(nothing) is None


@pytest.mark.parametrize("name", sorted(COLORS))
def test_every_persona_colour_has_a_discord_colour(name: str) -> None:
    voice = Voice(name="x", display_name="X", emoji=":x:", color=name)
    assert isinstance(colour_of(voice), discord.Colour)
    assert colour_of(Voice(name="x", display_name="X", emoji=":x:", color=name.replace("_", " ").upper())) == colour_of(voice)


def test_action_ids_are_fixed_per_investigation_and_read_back() -> None:
    custom_id = action_custom_id(TaskKind.CHALLENGE, "payments-1")
    assert custom_id == "orchestra:challenge:payments-1"
    m = ACTION_CUSTOM_ID_RE.fullmatch(custom_id)
    assert m and m.group("kind") == "challenge" and m.group("investigation") == "payments-1"
    assert ACTION_CUSTOM_ID_RE.fullmatch("orchestra:delete:payments-1") is None
    with pytest.raises(ValueError):
        action_custom_id(TaskKind.PLAN, "x" * 100)


async def test_action_view_is_persistent_with_one_styled_button_per_action() -> None:
    view = action_view(ACTIONS)
    assert view is not None and view.timeout is None and view.is_persistent()
    buttons = [(b.label, b.custom_id, b.style) for b in view.children]  # type: ignore[attr-defined]
    assert buttons == [
        ("Challenge", "orchestra:challenge:payments-1", discord.ButtonStyle.danger),
        ("Move to planning", "orchestra:plan:payments-1", discord.ButtonStyle.primary),
        ("Close", "orchestra:close:payments-1", discord.ButtonStyle.secondary),
    ]
    assert action_view([]) is None


def test_the_taken_line_names_who_clicked() -> None:
    assert taken_line("Challenge", "222") == "↪ Challenge requested by <@222>"
    assert taken_line("@everyone", "nobody") == f"↪ @{WORD_JOINER}everyone requested by nobody"
    assert not re.search(r"<@&", taken_line("<@&1>", "<@&1>"))


async def test_discord_py_builds_the_webhook_payload_of_every_part() -> None:
    """What the outbox will hand to `Webhook.send`: discord.py's own payload builder accepts it,
    with allowed mentions naming the asker alone."""
    from discord.http import handle_message_parameters

    posts = render_reply(turn("researcher", research(), asker="222333444555666777").model_copy(
        update={"content": {**research(), "patterns": [f"pattern {n} " + "p" * 900 for n in range(40)]}}), as_webhook=True)
    assert len(posts) > 1
    for post in posts:
        params = handle_message_parameters(
            content=post.content, username="Sophia", embeds=post.embeds, view=action_view(post.actions) or discord.utils.MISSING,
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(222333444555666777)],
                                                     replied_user=False),
        )
        payload = params.payload
        assert payload is not None and len(payload["embeds"]) == len(post.embeds) <= 10
        assert payload["allowed_mentions"]["parse"] == [] and payload["allowed_mentions"]["users"] == [222333444555666777]
        assert ("components" in payload) == bool(post.actions)
    assert posts[0].content == "<@222333444555666777>" and posts[-1].content == ""
