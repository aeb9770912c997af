"""`orchestra crew TEXT [--domain D] [--complexity low|medium|high] [--channel NAME]
[--persona P] [--json]`: one crew from the shell, start to end, like `orchestra investigate`.

It submits one crew task through the engine (platform `local`: the terminal chat shares this
memory), prints the posts as they come (plan review, progress, result, review), and exits.
`--json` prints one object instead: the orchestrator, the agents (role, seniority, domain), the
tasks, both reviews, the result and the token usage.

Like `bot/cli.py`, only the standard library is imported at module level (`orchestra --help`
builds this parser); crewai itself is imported only when the crew runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_USAGE = 2
COMPLEXITY_CHOICES = ("low", "medium", "high")


def add_parser(commands: argparse._SubParsersAction, *, channel_type, channel_help: str, json_help: str) -> None:
    crew = commands.add_parser("crew", help="a persona assembles a crew of AI agents for bigger work, reviews it, prints it")
    crew.add_argument("text", nargs="*", help="the work for the crew")
    crew.add_argument("--domain", help="sales, marketing, project, research, data, content or general (default: from the text)")
    crew.add_argument("--complexity", type=str.lower, choices=COMPLEXITY_CHOICES, default="medium",
                      help="low: one specialist; medium: a lead and a support (default); high: a lead, an expert and a support")
    crew.add_argument("--persona", help="who orchestrates (default: chosen by the domain)")
    crew.add_argument("--channel", type=channel_type, metavar="NAME", help=channel_help)
    crew.add_argument("--json", action="store_true", help=json_help)


def cmd_crew(args: argparse.Namespace, channel: str, settings_factory) -> int:
    import asyncio

    from engine.crews.request import CrewRequestError, crew_request
    from engine.text import is_blank

    text = " ".join(args.text).strip()
    if is_blank(text):
        return _usage('say what the crew should do, e.g. orchestra crew "grow the Q3 sales pipeline" --complexity high')
    try:
        request = crew_request(text, args.domain, args.complexity)
    except CrewRequestError as e:
        return _usage(str(e))
    settings = settings_factory()
    return asyncio.run(_crew(settings, request, channel=channel, persona=args.persona, as_json=args.json))


async def _crew(settings, request, *, channel: str, persona: str | None, as_json: bool) -> int:
    import json

    from adapters.terminal.shell import default_user
    from bot.bootstrap import bootstrap
    from bot.oneshot import LOCAL, ShellOutbox, UsageError, resolve_persona
    from engine.models import ReplyKind, Task, TaskKind

    app = await bootstrap(settings)
    try:
        try:
            who = resolve_persona(app, persona)
        except UsageError as e:
            return _usage(str(e))
        outbox = ShellOutbox(channel=channel, quiet=as_json)
        app.engine.register_outbox(LOCAL, outbox)
        message_id = f"{outbox.session}.0"
        task = Task(kind=TaskKind.CREW, platform=LOCAL, workspace=LOCAL, channel=channel, thread=None,
                    user=default_user(), text=request.text, persona=who, options=request.options(),
                    event_id=f"{LOCAL}:{message_id}", message_id=message_id)
        rec = await app.engine.run(task)
        if rec is None or rec.kind.value != "crew":
            if as_json:
                print(json.dumps({"status": "not started", "posts": _posts(outbox.posts)}, ensure_ascii=False))
            else:
                print("orchestra: no crew was started (see the message above)", file=sys.stderr)
            return 1
        turns = await app.memory.turns(rec.id)
        report = crew_report(rec, turns, outbox.posts)
        errors = [p.text for p in outbox.posts if p.kind == ReplyKind.ERROR]
        if errors:
            report["error"] = errors[-1]
        if as_json:
            print(json.dumps(report, ensure_ascii=False, default=str))
        else:
            print(f"Crew {rec.id} · {rec.status.value} · orchestrated by {rec.lead} · #{rec.channel} (platform {LOCAL})")
            print(f'Talk it over: orchestra reply {rec.id} "…" · a new crew: orchestra crew "…" --channel {rec.channel}')
        return 1 if outbox.failed else 0
    finally:
        await app.aclose()


def crew_report(rec, turns, posts) -> dict[str, Any]:
    """The crew as one JSON object, read from what memory stored (the same after a restart)."""
    by_mode = {t.mode: t for t in turns if t.role.value == "persona"}
    plan = by_mode.get("crew-plan")
    result = by_mode.get("crew-result")
    review = by_mode.get("crew-review")
    spec = (plan.findings or {}).get("plan", {}) if plan else {}
    found = (result.findings or {}) if result else {}
    return {
        "id": rec.id,
        "status": rec.status.value,
        "orchestrator": rec.lead,
        "domain": spec.get("domain", rec.inv_type),
        "complexity": spec.get("complexity"),
        "title": rec.title,
        "channel": rec.channel,
        "platform": rec.platform,
        "agents": [{"role": a["role"], "seniority": a["seniority"], "domain": a["domain"], "goal": a["goal"],
                    "tools": a.get("tools", [])} for a in spec.get("agents", [])],
        "tasks": [{"agent": t["agent"], "title": t["title"], "description": t["description"]} for t in spec.get("tasks", [])],
        "plan_review": {"review": plan.findings.get("review"), "verdict": plan.findings.get("verdict")} if plan else None,
        "result": found.get("result"),
        "outputs": found.get("outputs", []),
        "rehearsal": bool(found.get("rehearsal")),
        "usage": found.get("usage", {}),
        "result_review": dict(review.findings or {}) if review else None,
        "posts": _posts(posts),
    }


def _posts(posts) -> list[dict[str, Any]]:
    return [{"kind": p.kind.value, "mode": p.mode, "persona": p.voice.name, "text": p.text} for p in posts]


def _usage(message: str) -> int:
    print(f"orchestra crew: {message}", file=sys.stderr)
    return EXIT_USAGE
