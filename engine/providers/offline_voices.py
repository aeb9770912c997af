"""How each persona sounds in the offline rehearsal: wording, structure, length and formality.

The rehearsal has no model, so a persona's voice is written down here, following her traits in
`engine/personas/defaults.yaml`:

- **analyst** (Sophia: formality 0.8, humour 0.15, reserved, thorough): complete sentences,
  hedged claims, more evidence and more gaps, no jokes, every statement tied to its source.
- **chatty** (Karen: formality 0.25, humour 0.75, outgoing, warm, asks what the customer thinks):
  contractions, exclamations, short lists, a customer question in every turn.
- **strategist** (Cherry: formality 0.7, conscientious, decisive): bottom line first, numbered
  priorities, owners and decision points.

A persona of your own gets the voice her prompt's style asks for ("Write formally…" → analyst,
"Write casually…" → chatty, anything else → strategist). Templates take `{topic}`, `{n}` and the
like; choices among them are made by the caller's CRC seed, so the output stays deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Voice:
    key: str
    # researcher
    research_summary: str  # {topic} {n} {memory}
    hypotheses: tuple[str, ...]  # {topic}
    patterns: tuple[str, ...]
    gaps: tuple[str, ...]
    quotes: int  # how many of the person's sentences she cites
    gap_count: int
    # critic
    critic_summary: str  # {topic}
    challenges: tuple[str, ...]  # {topic}
    measurement: str  # {quote}
    # planner
    plan_summary: str  # {topic}
    phase_names: tuple[str, ...]
    phase_steps: tuple[tuple[str, ...], ...]  # {topic} {check}
    # prose (conversations)
    opener: tuple[str, ...]
    closer: str
    rehearsal: str  # the in-voice admission that no model is answering


ANALYST = Voice(
    key="analyst",
    research_summary=(
        "I reviewed {n} item{s} of evidence on {topic}{memory}. The evidence is consistent with one "
        "explanation, but it does not yet establish it."
    ),
    hypotheses=(
        "The evidence is most consistent with a single recent change behind {topic}; this remains to be verified.",
        "The available evidence points to one main cause of {topic}, although other causes are not yet excluded.",
        "The effect behind {topic} appears concentrated in one segment; the data has not confirmed this yet.",
    ),
    patterns=(
        "The same concern recurs across the statements provided.",
        "The reports indicate a specific onset: the problem began, or worsened, at an identifiable time.",
        "The effect is selective: some cases are affected and others are not, which narrows the search.",
    ),
    gaps=(
        "When precisely did this begin, and which changes were made around that time?",
        "Which logs or metrics would confirm or refute the hypothesis?",
        "Which segments are affected, and which are demonstrably unaffected?",
        "What has already been tried, and with what result?",
    ),
    quotes=3,
    gap_count=3,
    critic_summary="The hypothesis on {topic} rests on unverified statements; at least two alternatives fit the same evidence.",
    challenges=(
        "The evidence on {topic} comes from a single account and has not been checked against data.",
        "The hypothesis explains what was observed, but so would other explanations of {topic}.",
        "No measurement yet establishes when {topic} began, so cause and effect cannot be separated.",
    ),
    measurement="“{quote}” is a report, not yet a measurement.",
    plan_summary="A measured plan for {topic}: establish the cause with data before changing anything.",
    phase_names=("Measure", "Test the hypothesis", "Change, then measure again"),
    phase_steps=(
        ("Collect the logs and metrics that bear on {topic}", "{check}"),
        ("Compare the hypothesis with the two alternatives on the same data",),
        ("Make the smallest change the data supports", "Repeat the measurements from the first phase"),
    ),
    opener=("Noted.", "Understood."),
    closer="I would not call anything a cause until the evidence supports it.",
    rehearsal="This is a rehearsal without a language model, so I can only restate what you provided.",
)

CHATTY = Voice(
    key="chatty",
    research_summary="Okay, quick read on {topic}! {n} thing{s} jump{verb} out{memory}. And hey, what are customers saying?",
    hypotheses=(
        "My gut says something changed recently and {topic} is the fallout.",
        "I'd bet it's one thing behind {topic}, and we're close to it!",
        "Feels like {topic} is hitting one group of customers way harder than the rest.",
    ),
    patterns=(
        "Same thing keeps popping up: that's the thread to pull!",
        "Timing's suspicious: it kicked off at a specific moment.",
        "Some folks get hit, others don't. Love a clue like that.",
    ),
    gaps=(
        "What are customers actually telling support about this?",
        "When did it kick off, and what shipped around then?",
    ),
    quotes=2,
    gap_count=1,
    critic_summary="Hold on! Before we run with {topic}, let's poke a few holes in it.",
    challenges=(
        "Would a customer even describe {topic} this way? I'm not sure they would.",
        "This looks great on paper, but nobody has checked {topic} against real numbers yet!",
        "We don't know when {topic} started, so we can't say what caused it. Not yet.",
    ),
    measurement="“{quote}” is a story, not a number (yet!).",
    plan_summary="Here's how we get {topic} sorted, fast, and keep customers in the loop!",
    phase_names=("Get the facts (and tell customers what's up)", "Fix it and check in with customers"),
    phase_steps=(
        ("{check}", "Post a quick heads-up to the affected customers"),
        ("Ship the smallest fix for {topic}", "Call two affected customers and ask if it's better"),
    ),
    opener=("Ooh, love this one!", "Oh, good one!"),
    closer="First thing I'd ask: what will the customer think?",
    rehearsal="(No model hooked up yet, so I'm just rehearsing here!)",
)

STRATEGIST = Voice(
    key="strategist",
    research_summary="Bottom line on {topic}: {n} fact{s} on the table{memory}, one working hypothesis, open questions below.",
    hypotheses=(
        "Working hypothesis: one recent change is behind {topic}.",
        "Working hypothesis: {topic} has a single main cause we can act on.",
        "Working hypothesis: {topic} is a process gap; nobody owns the step where it goes wrong.",
    ),
    patterns=(
        "The same concern comes up more than once; it deserves priority.",
        "There is a clear starting point in time, which gives us a decision lever.",
        "Only some cases are affected, so the scope of the fix can stay small.",
    ),
    gaps=(
        "Who owns this area, and what changed there recently?",
        "Which number will tell us we are done?",
        "What has already been tried, and what did it cost?",
    ),
    quotes=2,
    gap_count=2,
    critic_summary="Before we commit people and time to {topic}, two alternatives need ruling out.",
    challenges=(
        "Nobody has tied {topic} to data yet; committing now would be a bet, not a decision.",
        "The hypothesis on {topic} fits, but so do the alternatives below; that is a risk to the plan.",
        "We do not know when {topic} started, so we cannot attribute it to a change yet.",
    ),
    measurement="“{quote}” is a report; we need a number before we prioritise.",
    plan_summary="Plan for {topic}: three phases, an owner for each, and a decision point after the first.",
    phase_names=("Confirm the cause", "Fix and verify", "Roll out and watch"),
    phase_steps=(
        ("{check}", "Decision point: go on only if one explanation is supported"),
        ("Make the smallest change that addresses {topic}", "Verify it on a small scope first"),
        ("Roll the change out to everyone", "Review the metrics below weekly with the owner"),
    ),
    opener=("Good question.", "Fair question."),
    closer="Next step: name an owner and a date.",
    rehearsal="This is a rehearsal without a model, so treat it as a frame, not an answer.",
)

_BY_NAME = {"sophia": ANALYST, "karen": CHATTY, "cherry": STRATEGIST}


def voice_for(persona: str, system: str) -> Voice:
    """The voice of a shipped persona by name; any other by the style her prompt asks for."""
    known = _BY_NAME.get(persona.lower())
    if known is not None:
        return known
    if "Write formally" in system:
        return ANALYST
    if "Write casually" in system:
        return CHATTY
    return STRATEGIST
