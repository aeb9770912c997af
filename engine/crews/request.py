"""What a person asks of a crew, read the same way from every platform's command text.

    /crew sales high: grow the Q3 pipeline          → domain sales, complexity high
    /crew domain=research complexity=low why churn?  → the options spelled out
    /crew --domain data --complexity medium TEXT     → as on the command line

Options come first; the rest is the work. A persona named first ("sophia, ...") is left in the
text for the engine, which reads addressees the same way for every task.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

#: Domains a crew can work in, and the complementary domain a high-complexity crew borrows a
#: support from (see engine.crews.team).
DOMAINS = ("sales", "marketing", "project", "research", "data", "content", "general")
COMPLEXITIES = ("low", "medium", "high")
DEFAULT_COMPLEXITY = "medium"


class CrewRequestError(ValueError):
    """A crew command a person should fix; the message says how (safe to show)."""


class CrewRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    domain: str | None = None  # None: the engine infers it from the text
    complexity: str = DEFAULT_COMPLEXITY

    def options(self) -> dict[str, str]:
        """For `Task.options`."""
        opts = {"complexity": self.complexity}
        if self.domain:
            opts["domain"] = self.domain
        return opts

    @classmethod
    def from_options(cls, text: str, options: dict[str, str]) -> "CrewRequest":
        return crew_request(text, options.get("domain"), options.get("complexity"))


def crew_request(text: str, domain: str | None = None, complexity: str | None = None) -> CrewRequest:
    """Check typed options (Discord's choices, the CLI's flags) and build the request."""
    if domain is not None:
        domain = domain.strip().lower() or None
        if domain is not None and domain not in DOMAINS:
            raise CrewRequestError(f"I don't know the domain “{domain}”. Domains: {', '.join(DOMAINS)}.")
    level = (complexity or DEFAULT_COMPLEXITY).strip().lower()
    if level not in COMPLEXITIES:
        raise CrewRequestError(f"Complexity is one of {', '.join(COMPLEXITIES)}, not “{complexity}”.")
    return CrewRequest(text=text.strip(), domain=domain, complexity=level)


_OPTION = re.compile(r"^(?:--)?(domain|complexity)(?:[=:]|\s+)(\S+)\s*", re.IGNORECASE)
_WORD = "|".join(DOMAINS + COMPLEXITIES)
#: bare option words only count as a prefix ended by a colon: "sales high: TEXT" (not "Sales is down")
_BARE = re.compile(rf"^((?:(?:{_WORD})[\s,]+)*(?:{_WORD}))\s*:\s*", re.IGNORECASE)


def parse_crew_text(text: str) -> CrewRequest:
    """Read leading options off a chat command's text (see the module's examples)."""
    rest = (text or "").strip()
    found: dict[str, str] = {}

    def take(key: str, value: str) -> None:
        if key in found:
            raise CrewRequestError(f"Give the {key} once (you gave “{found[key]}” and “{value}”).")
        found[key] = value

    while m := _OPTION.match(rest):
        take(m.group(1).lower(), m.group(2).rstrip(":,").lower())
        rest = rest[m.end():]
    if m := _BARE.match(rest):
        for word in re.split(r"[\s,]+", m.group(1).lower()):
            take("domain" if word in DOMAINS else "complexity", word)
        rest = rest[m.end():]
    return crew_request(rest, found.get("domain"), found.get("complexity"))
