"""The offline rehearsal provider: no network, no key, instant and deterministic.

It lets people try Orchestra (and the test suite and benchmarks exercise the whole engine)
without a model. Findings are built from what it was given: evidence quotes the person's latest
message and the channel memory in the system prompt, and every finding validates against the
mode's pydantic model, so an investigation runs through discovery, validation and planning to the
end. Choices vary with a CRC of the input, never with randomness: the same input gives the same
output. Each persona has her own voice (`engine.providers.offline_voices`); prose answers admit in
that voice that no model is answering, and the engine says how to connect one, once per thread.
People's words are quoted whole: sentences, or clauses of a long one, never cut inside "00:00".
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from engine.findings import Confidence
from engine.ports import ModelRequest, ModelResponse, Usage
from engine.providers.offline_voices import Voice, voice_for

_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
# A long sentence is cited clause by clause: split after , ; : only where a space follows, so
# "00:00 UTC", "1,000" and "v1.2" stay whole.
_CLAUSE_RE = re.compile(r"(?<=[,;:])\s+")
_CHECKS = "Checks still open"
_PERSONA_RE = re.compile(r"\bYou are ([A-Z][\w'-]*)")
# A prompt section ends at a blank line followed by the next "Heading:".
_SECTION_END_RE = re.compile(r"\n[ \t]*\n(?=[A-Z][\w ]{0,40}:)")
_THREAD = "Thread so far:"
_HUMAN_RE = re.compile(
    r"^\[\d+\] Person \([^)\n]*\):\n(.*?)(?=\n\n\[\d+\] |\n\nNow do your |\n\nChecks still open|\Z)", re.MULTILINE | re.DOTALL
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

    __slots__ = ("persona", "question", "earlier", "memory", "seed", "words", "topic", "voice", "checks")

    def __init__(self, request: ModelRequest):
        system = request.system
        users = [m.content for m in request.messages if m.role == "user" and m.content.strip()]
        last = users[-1].strip() if users else ""
        task = _section(system, "\nTask:", same_line=True)
        thread_at = last.find(_THREAD)
        people = [h.strip() for h in _HUMAN_RE.findall(last, thread_at)] if thread_at != -1 else []
        # "/investigate karen checkout fails": the opening message is the task with its addressee
        people = [task if task and p != task and p.endswith(task) and len(p[: -len(task)].split()) == 1 else p for p in people]
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
        self.voice: Voice = voice_for(self.persona, system)
        checks_at = last.find(_CHECKS)
        self.checks = [
            line.strip()[2:].strip() for line in _section(last[checks_at:], _CHECKS, same_line=False).splitlines()
            if line.strip().startswith("- ")
        ] if checks_at != -1 else []
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
    """The text's sentences, each whole; a sentence too long to quote is cited clause by clause."""
    parts: list[str] = []
    for sentence in (p.strip() for p in _SENTENCE_RE.split(text)):
        if not sentence:
            continue
        if len(sentence) > _QUOTE:
            parts += [c.strip() for c in _CLAUSE_RE.split(sentence) if len(c.split()) >= 2]
        elif len(sentence.split()) >= 2 or not parts:
            parts.append(sentence)
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


def _research(src: _Input) -> dict[str, Any]:
    v = src.voice
    evidence = [{"claim": q, "source": "your message"} for q in _quotes(src.question, v.quotes)]
    evidence += [{"claim": q, "source": "channel memory"} for q in _memory_items(src.memory, 2)]
    if src.earlier and len(evidence) < 4:
        evidence += [{"claim": q, "source": "the question"} for q in _quotes(src.earlier, 1)]
    if not evidence:
        evidence = [{"claim": "The question arrived without details yet.", "source": "your message"}]
    thin = src.words < _THIN and not src.memory
    confidence = Confidence.LOW if thin else Confidence.MEDIUM
    patterns = [_pick(v.patterns, src.seed, 1)]
    if src.memory or v.quotes >= 3:
        second = v.patterns[(v.patterns.index(patterns[0]) + 1) % len(v.patterns)]
        patterns.append(second)
    start = src.seed % len(v.gaps)
    questions = [v.gaps[(start + i) % len(v.gaps)] for i in range(v.gap_count)]
    gaps = [{"question": q, "needs_people": thin and i == 0} for i, q in enumerate(questions)]
    n = len(evidence)
    return {
        "summary": v.research_summary.format(
            topic=src.topic, n=n, s="" if n == 1 else "s", verb="s" if n == 1 else "",
            memory=" (this channel's memory included)" if src.memory else "",
        ),
        "evidence": evidence,
        "patterns": patterns,
        "hypothesis": {"statement": _pick(v.hypotheses, src.seed).format(topic=src.topic), "confidence": confidence.value},
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


def _critique(src: _Input) -> dict[str, Any]:
    v = src.voice
    start = src.seed % len(_ALTERNATIVES)
    alternatives = [
        {"statement": s, "why": w}
        for s, w in (_ALTERNATIVES[(start + i) % len(_ALTERNATIVES)] for i in range(2))
    ]
    quote = _quotes(src.question, 1)
    challenges = [_pick(v.challenges, src.seed).format(topic=src.topic)]
    if quote:
        challenges.append(v.measurement.format(quote=quote[0]))
    thin = src.words < _THIN and not src.memory
    return {
        "summary": v.critic_summary.format(topic=src.topic),
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
_CRITERIA = (
    "One explanation is supported by data; the others are ruled out",
    "The problem no longer reproduces in the small scope",
    "The metrics hold steady for a week after the roll-out",
)


def _plan(src: _Input) -> dict[str, Any]:
    v = src.voice
    durations = _DURATIONS[src.seed % len(_DURATIONS)]
    quote = _quotes(src.question, 1)
    check = f"Check what was described: “{quote[0]}”" if quote else "Collect the facts behind the question"
    phases = []
    for i, (name, steps) in enumerate(zip(v.phase_names, v.phase_steps)):
        done = [step.format(topic=src.topic, check=check) for step in steps]
        if i == 0:  # the checks the critic and the research left open come first
            done = [f"Check: {c}" for c in src.checks] + done
        phases.append({
            "name": name,
            "steps": done,
            "success_criteria": [_CRITERIA[i] if len(v.phase_names) == 3 or i == 0 else _CRITERIA[2]],
            "duration": durations[i],
        })
    return {
        "summary": v.plan_summary.format(topic=src.topic),
        "phases": phases,
        "timeline": "About " + " + ".join(durations[: len(phases)]) + ".",
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


def _prose(src: _Input) -> str:
    """A conversation answer in her voice. How to connect a model is the engine's to say, once
    per thread (see `engine.flows`), not repeated in every answer."""
    v = src.voice
    question = _clip(src.question, _QUESTION)
    opener = _pick(v.opener, src.seed)
    if v.key == "chatty":
        asked = f" “{question}”: great thing to dig into." if question else ""
        return f"{opener}{asked} {v.closer} {v.rehearsal}"
    said = _quotes(src.question, 3)
    memory = _memory_items(src.memory, 2)
    if v.key == "analyst":
        lines = [f"{opener} You asked: “{question}”" if question else opener, ""]
        lines.append(f"What you provided: {len(said)} statement{'s' if len(said) != 1 else ''}"
                     + (f"; this channel's memory adds {len(memory)} more." if memory else "."))
        lines += [f"- {q}" for q in said + memory]
        lines += ["", f"What I would need before concluding: {_pick(v.gaps, src.seed, 2).lower()}", "", f"{v.closer} {v.rehearsal}"]
        return "\n".join(lines).strip()
    lines = [f"{opener} Here is how I would frame {src.topic}:"]
    lines.append(f"1. What we know: {said[0] if said else 'only the question so far'}"
                 + (f" (and this channel has worked on it before: {memory[0]})" if memory else ""))
    lines.append(f"2. What matters most: {_pick(v.gaps, src.seed, 2)}")
    lines.append(f"3. {v.closer}")
    lines.append(v.rehearsal)
    return "\n".join(lines)


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

