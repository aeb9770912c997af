"""The offline rehearsal provider: no network, no key, instant and deterministic.

It lets people try Orchestra (and the test suite and benchmarks exercise the whole engine)
without a model. Findings are built from what it was given: evidence quotes the person's latest
message and the channel memory in the system prompt, and every finding validates against the
mode's pydantic model, so an investigation runs through discovery, validation and planning to the
end. Choices vary with a CRC of the input, never with randomness: the same input gives the same
output. Prose answers say plainly that this is a rehearsal and how to connect a real model.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from engine.findings import Confidence
from engine.ports import ModelRequest, ModelResponse, Usage

_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_PHRASE_RE = re.compile(r"\s*(?:[,;:]|\s-\s|\sbut\s|\sand\s)\s*")
_PERSONA_RE = re.compile(r"\bYou are ([A-Z][\w'-]*)")
# A prompt section ends at a blank line followed by the next "Heading:".
_SECTION_END_RE = re.compile(r"\n[ \t]*\n(?=[A-Z][\w ]{0,40}:)")
_THREAD = "Thread so far:"
_HUMAN_RE = re.compile(
    r"^\[\d+\] Person \([^)\n]*\):\n(.*?)(?=\n\n\[\d+\] |\n\nNow do your |\Z)", re.MULTILINE | re.DOTALL
)
# "- 2026-11-22 «title» sophia (researcher): text" → text
_MEMORY_PREFIX_RE = re.compile(r"^\d{4}-\d\d-\d\d\s+«[^»]*»[^:]*:\s*")
_NO_MEMORY = {"", "(nothing yet)", "(none)", "none", "nothing yet"}
_STOPWORDS = frozenset(
    """about above after again against all also and any are because been before being below
    between both but can cannot could did does doing down during each few for from further had
    has have having her here hers herself him himself his how into its itself just let like
    more most much must not now off once only other our ours out over own same she should since
    some such than that the their theirs them then there these they this those through too
    under until very was were what when where which while who whom why will with would you
    your yours yourself please thanks thank hello hey could seems seem really think know want
    need get got make made look looks looking still even yet one two lot lots thing things""".split()
)

#: Words that open a question but say nothing about its subject.
_LEADING = frozenset(
    """why how what when where who which whom whose did does do is are was were can could should
    would will shall may might must has have had our we you your i my me us the a an so ok okay
    hey hi hello please tell explain help understand figure out look into investigate about
    and but or then there here it its it's that this these those""".split()
)

#: How long a quote may be, and how much of the question a prose answer repeats.
_QUOTE = 180
_QUESTION = 200
#: Fewer words than this in the person's message: too thin for more than low confidence, and
#: the rehearsal stops to ask the people. "intermittent 401s on checkout" is enough to run the
#: whole researcher → critic → planner loop; "why?" is not.
_THIN = 3


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _pick(options: tuple[str, ...], seed: int, salt: int = 0) -> str:
    return options[(seed >> (salt * 3)) % len(options)]


class _Input:
    """What the rehearsal works from, read once per call.

    A conversation's last user message is the person's question. A structured turn's last user
    message is the engine's context (investigation header, "Thread so far:" with `[n] Person (…):`
    blocks, then "Now do your … turn"); there the person's words are those blocks and the
    investigation's question is the system prompt's "Task:" section.
    """

    __slots__ = ("persona", "question", "earlier", "memory", "seed", "words", "topic")

    def __init__(self, request: ModelRequest):
        system = request.system
        users = [m.content for m in request.messages if m.role == "user" and m.content.strip()]
        last = users[-1].strip() if users else ""
        task = _section(system, "\nTask:", same_line=True)
        thread_at = last.find(_THREAD)
        people = [h.strip() for h in _HUMAN_RE.findall(last, thread_at)] if thread_at != -1 else []
        if people:  # a structured turn with people's messages in the thread
            self.question = people[-1]
            said = "\n".join(people if task in people else [task, *people])
        elif thread_at != -1:  # a structured turn before anyone replied: the question is the task
            self.question, said = task, task
        else:  # a conversation (or a caller of our own): the last user message is the question
            self.question, said = last, last
        self.earlier = task if task and task != self.question else ""
        found = _PERSONA_RE.search(system)
        self.persona = found.group(1) if found else ""
        memory = _section(system, "Channel memory", same_line=False)
        self.memory = "" if memory.lower() in _NO_MEMORY else memory
        # The whole last message is in the seed: the same people's words at a later turn vary.
        key = f"{request.schema_name}\x00{self.persona}\x00{last}\x00{self.memory}"
        self.seed = zlib.crc32(key.encode("utf-8", "replace"))
        self.words = len(said.split())
        self.topic = _topic(task or self.question or self.memory)


def _section(text: str, heading: str, *, same_line: bool) -> str:
    """The text under a prompt heading (on its line, or from the next line), up to the next one.

    Plain string searches: this runs on every call, and prompts run to tens of kilobytes.
    """
    at = text.find(heading)
    if at == -1:
        return ""
    start = at + len(heading)
    if not same_line:
        start = text.find("\n", start)
        if start == -1:
            return ""
    end = _SECTION_END_RE.search(text, start)
    return text[start : end.start() if end else len(text)].strip()


def _topic(text: str) -> str:
    """A short handle for what the text is about: its first sentence, without the question words."""
    first = _SENTENCE_RE.split(text.strip(), 1)[0] if text.strip() else ""
    words = first.rstrip("?!. ").split()
    while words and words[0].lower().strip(",") in _LEADING:
        words.pop(0)
    if not words or not any(w.lower() not in _STOPWORDS for w in words):
        return "this question"
    return f"“{_clip(' '.join(words[:9]).rstrip(',;:'), 70)}”"


def _quotes(text: str, limit: int) -> list[str]:
    """Sentences of the text, or its phrases when it is a single sentence."""
    parts = [p.strip() for p in _SENTENCE_RE.split(text) if len(p.split()) >= 2]
    if len(parts) < 2:
        phrases = [p.strip() for p in _PHRASE_RE.split(text) if len(p.split()) >= 3]
        if len(phrases) > len(parts):
            parts = phrases
    if not parts and text.strip():
        parts = [text.strip()]
    return [_clip(p, _QUOTE) for p in parts[:limit]]


def _memory_items(memory: str, limit: int) -> list[str]:
    items: list[str] = []
    for line in memory.splitlines():
        line = _MEMORY_PREFIX_RE.sub("", line.strip().lstrip("-*• ").strip())
        if len(line.split()) >= 2:
            items.append(_clip(line, _QUOTE))
            if len(items) == limit:
                break
    return items


# --- researcher -----------------------------------------------------------------------------

_HYPOTHESES = (
    "What lies behind {topic} is one recent change rather than a long-standing pattern.",
    "What lies behind {topic} is a single main cause the evidence already points to.",
    "The trouble behind {topic} is concentrated in one part of the system or one group of people.",
    "The trouble behind {topic} is a process gap: nobody owns the step where it goes wrong.",
)
_PATTERNS = (
    "The same concern comes up more than once in what was said.",
    "The description points to timing: it started or got worse at a particular moment.",
    "What is described affects some cases and not others, which narrows the search.",
    "Earlier work in this channel touches the same area.",
)
_GAPS = (
    "When exactly did this start, and what changed around then?",
    "Which numbers or logs would confirm or rule out the hypothesis?",
    "Who is affected most, and who is not affected at all?",
    "What has already been tried, and what happened?",
)


def _research(src: _Input) -> dict[str, Any]:
    evidence = [{"claim": q, "source": "your message"} for q in _quotes(src.question, 3)]
    evidence += [{"claim": q, "source": "channel memory"} for q in _memory_items(src.memory, 2)]
    if src.earlier and len(evidence) < 4:
        evidence += [{"claim": q, "source": "the question"} for q in _quotes(src.earlier, 1)]
    if not evidence:
        evidence = [{"claim": "The question arrived without details yet.", "source": "your message"}]
    thin = src.words < _THIN and not src.memory
    confidence = Confidence.LOW if thin else Confidence.MEDIUM
    patterns = [_pick(_PATTERNS[:3], src.seed, 1)]
    if src.memory:
        patterns.append(_PATTERNS[3])
    first_gap = _pick(_GAPS, src.seed, 2)
    gaps = [{"question": first_gap, "needs_people": thin}]
    second_gap = _pick(_GAPS, src.seed, 3)
    if second_gap != first_gap:
        gaps.append({"question": second_gap, "needs_people": False})
    hypothesis = _pick(_HYPOTHESES, src.seed).format(topic=src.topic)
    return {
        "summary": (
            f"Offline rehearsal: I looked at what you wrote about {src.topic}"
            + (" and at this channel's memory" if src.memory else "")
            + f" and found {len(evidence)} piece{'s' if len(evidence) != 1 else ''} of evidence."
        ),
        "evidence": evidence,
        "patterns": patterns,
        "hypothesis": {"statement": hypothesis, "confidence": confidence.value},
        "gaps": gaps,
    }


# --- critic ---------------------------------------------------------------------------------

_ALTERNATIVES = (
    ("It is a coincidence of timing: two unrelated changes landed together.",
     "Nothing in the evidence separates cause from coincidence yet."),
    ("The cause sits upstream, in a dependency or input, not where it shows.",
     "Symptoms often surface far from their source."),
    ("It is a measurement problem: the numbers changed, not the reality.",
     "A changed metric, filter or log level can look exactly like a real shift."),
    ("Several small causes add up; there is no single root cause.",
     "The evidence is consistent with more than one contributor."),
)
_CHALLENGES = (
    "The evidence about {topic} comes from one account; it has not been checked against data.",
    "The hypothesis about {topic} explains what was seen, but so would other explanations.",
    "Nothing yet shows when {topic} started, so cause and effect cannot be separated.",
)


def _critique(src: _Input) -> dict[str, Any]:
    start = src.seed % len(_ALTERNATIVES)
    alternatives = [
        {"statement": s, "why": w}
        for s, w in (_ALTERNATIVES[(start + i) % len(_ALTERNATIVES)] for i in range(2))
    ]
    quote = _quotes(src.question, 1)
    challenges = [_pick(_CHALLENGES, src.seed).format(topic=src.topic)]
    if quote:
        challenges.append(f"“{quote[0]}” is a description, not yet a measurement.")
    thin = src.words < _THIN and not src.memory
    return {
        "summary": f"Offline rehearsal: before acting on {src.topic}, test the hypothesis against two alternatives.",
        "challenges": challenges,
        "vulnerabilities": [
            "Confirmation bias: the first explanation offered tends to stick.",
            "Missing data: no logs or metrics have been shared yet."
            if not src.memory
            else "Channel memory may describe an older state of things.",
        ],
        "alternatives": alternatives,
        "risks": [
            f"Fixing the wrong cause of {src.topic} costs time and hides the real one.",
            "A change made on a weak hypothesis can make things worse.",
        ],
        "remaining_confidence": (Confidence.LOW if thin else Confidence.MEDIUM).value,
    }


# --- planner --------------------------------------------------------------------------------

_DURATIONS = (("1 day", "2-3 days", "1 week"), ("2 days", "3-5 days", "1 week"), ("half a day", "2 days", "1 week"))


def _plan(src: _Input) -> dict[str, Any]:
    d1, d2, d3 = _DURATIONS[src.seed % len(_DURATIONS)]
    quote = _quotes(src.question, 1)
    check = f"Check what was described: “{quote[0]}”" if quote else "Collect the facts behind the question"
    return {
        "summary": f"Offline rehearsal: a three-phase plan for {src.topic}: confirm, fix, then watch.",
        "phases": [
            {
                "name": "Confirm the cause",
                "steps": [check, "Compare the hypothesis with the two alternatives the critic named"],
                "success_criteria": ["One explanation is supported by data; the others are ruled out"],
                "duration": d1,
            },
            {
                "name": "Fix and verify",
                "steps": [f"Make the smallest change that addresses {src.topic}", "Verify it on a small scope first"],
                "success_criteria": ["The problem no longer reproduces in the small scope"],
                "duration": d2,
            },
            {
                "name": "Roll out and watch",
                "steps": ["Roll the change out to everyone", "Watch the metrics below for a week"],
                "success_criteria": ["The metrics hold steady for a week after the roll-out"],
                "duration": d3,
            },
        ],
        "timeline": f"About {d1} + {d2} + {d3}.",
        "dependencies": ["Access to the relevant logs or data", "An owner for each phase"],
        "risks": [
            {"risk": "The first phase finds a different cause", "mitigation": "Re-plan the later phases before starting them"},
            {"risk": "The fix has side effects", "mitigation": "Roll out gradually and keep a way back"},
        ],
        "metrics": [f"How often {src.topic} is reported", "Time from report to resolution"],
    }


# --- any other schema -----------------------------------------------------------------------


def _fill(schema: dict[str, Any], defs: dict[str, Any], text: str, depth: int = 0) -> Any:
    """A minimal instance of a JSON Schema we have no template for (strings quote the input)."""
    if "$ref" in schema and depth < 8:
        return _fill(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, text, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema or "oneOf" in schema:
        return _fill((schema.get("anyOf") or schema["oneOf"])[0], defs, text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" and depth < 8:
        return {k: _fill(v, defs, text, depth + 1) for k, v in schema.get("properties", {}).items()}
    if kind == "array" and depth < 8:
        return [_fill(schema.get("items", {}), defs, text, depth + 1)]
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return text


# --- prose ----------------------------------------------------------------------------------

_VOICES = {
    "cherry": ("Good question.", "Once a real model is connected, I will turn this into priorities with owners and dates."),
    "sophia": ("Noted.", "Once a real model is connected, I will look at the evidence and tell you what it supports."),
    "karen": ("Ooh, love this one!", "Hook me up to a real model and I'll tell you what the customer will think."),
}
_DEFAULT_VOICE = ("Thanks for asking.", "Once a real model is connected, you will get a real answer here.")
_HOW_TO = (
    "To connect one, set ANTHROPIC_API_KEY or OPENAI_API_KEY, "
    "or OPENAI_BASE_URL for a local server (Ollama, vLLM, llama.cpp)."
)


def _prose(src: _Input) -> str:
    opener, promise = _VOICES.get(src.persona.lower(), _DEFAULT_VOICE)
    question = _clip(src.question, _QUESTION)
    asked = f" You asked: “{question}”" + ("" if question[-1:] in ".?!…" else ".") if question else ""
    return (
        f"{opener}{asked} This is an offline rehearsal: no language model is answering, "
        f"so I can only echo the shape of a reply. {promise} {_HOW_TO}"
    )


_BUILDERS = {"researcher": _research, "critic": _critique, "planner": _plan}


class OfflineProvider:
    """The `Provider` port without a model: deterministic, instant, never touches the network."""

    name = "offline"
    model = "offline"

    async def generate(self, request: ModelRequest) -> ModelResponse:
        return self.answer(request)

    def answer(self, request: ModelRequest) -> ModelResponse:
        """The same as `generate`, for callers that are not async (benchmarks, the CLI)."""
        src = _Input(request)
        if request.json_schema is None:
            text = _prose(src)
        else:
            build = _BUILDERS.get(request.schema_name or "")
            if build is not None:
                finding = build(src)
            else:
                schema = request.json_schema
                finding = _fill(schema, schema.get("$defs", {}), _clip(src.question or "offline", _QUOTE))
            text = json.dumps(finding, ensure_ascii=False)
        size = len(request.system) + sum(len(m.content) for m in request.messages)
        return ModelResponse(
            text=text,
            usage=Usage(input_tokens=size // 4 + 1, output_tokens=len(text) // 4 + 1),
            model=self.model,
            offline=True,
        )

    async def aclose(self) -> None:
        return None

