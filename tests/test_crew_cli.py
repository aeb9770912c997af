"""Crews from the shell and the terminal (real `orchestra` processes), their setting, and the
team a persona assembles (pure)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from engine.crews.request import crew_request
from engine.crews.team import assemble
from engine.personas import PersonaRegistry
from tests.servers.openai_server import act_like_crew_model
from tests.test_cli import clean_env, orchestra
from tests.test_terminal import chat

pytest_plugins = ["tests.servers.fixtures"]

INSTALL = "pip install 'orchestra-personas[crew]'"


async def orchestra_async(tmp_path: Path, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`orchestra ARGS` without blocking the loop the local model server runs on."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(), err.decode()


# --- orchestra crew -----------------------------------------------------------------------------


async def test_crew_json_against_a_local_openai_compatible_server(tmp_path, openai_server):
    act_like_crew_model(openai_server, {"Senior sales strategist": "Raise EMEA prices, then hire two reps."},
                        review="A tight crew. Verdict: go")
    env = clean_env(tmp_path, OPENAI_BASE_URL=openai_server.base_url, OPENAI_API_KEY="sk-local-test",
                    ORCHESTRA_OPENAI_MODEL="gpt-test", ORCHESTRA_MODEL_MAX_RETRIES="0")
    code, out, err = await orchestra_async(tmp_path, "crew", "grow the Q3 pipeline", "--domain", "sales",
                                           "--complexity", "high", "--channel", "#deals", "--json", env=env)
    assert code == 0, err
    report = json.loads(out)  # one JSON object, nothing else on stdout
    assert report["id"] == "deals-crew1" and report["status"] == "complete"
    assert report["orchestrator"] == "karen" and report["domain"] == "sales" and report["complexity"] == "high"
    assert [(a["role"], a["seniority"], a["domain"]) for a in report["agents"]] == [
        ("Senior sales strategist", "senior", "sales"),
        ("Expert sales strategist", "expert", "sales"),
        ("Mid-level marketing strategist (marketing support)", "mid-level", "marketing"),
    ]
    assert [t["agent"] for t in report["tasks"]] == [
        "Expert sales strategist", "Mid-level marketing strategist (marketing support)", "Senior sales strategist"]
    assert report["plan_review"] == {"review": "A tight crew. Verdict: go", "verdict": "go"}
    assert report["result"] == "Raise EMEA prices, then hire two reps."
    assert report["result_review"]["verdict"] == "go"
    assert report["usage"]["total_tokens"] > 0 and not report["rehearsal"]
    assert "sk-local-test" not in out + err and "Traceback" not in err
    # the crew is in the channel's memory like any thread
    listed = orchestra(tmp_path, "memory", "list", "--channel", "deals", env=env)
    assert "deals-crew1" in listed.stdout and "crew" in listed.stdout
    # and people can talk the result over with the orchestrator in the crew's thread
    code, out, err = await orchestra_async(tmp_path, "reply", "deals-crew1", "what about EMEA?", env=env)
    assert code == 0, err
    assert "Crew deals-crew1" in out and "Karen" in out


def test_crew_usage_errors_exit_2_without_starting_anything(tmp_path):
    empty = orchestra(tmp_path, "crew")
    assert empty.returncode == 2 and "say what the crew should do" in empty.stderr
    domain = orchestra(tmp_path, "crew", "grow it", "--domain", "astrology")
    assert domain.returncode == 2 and "I don't know the domain “astrology”" in domain.stderr
    level = orchestra(tmp_path, "crew", "grow it", "--complexity", "extreme")
    assert level.returncode == 2 and "--complexity" in level.stderr
    assert not (tmp_path / "memory.db").exists()


def test_a_bad_crew_timeout_stops_start_up_naming_it(tmp_path):
    result = orchestra(tmp_path, "crew", "grow it", env=clean_env(tmp_path, ORCHESTRA_CREW_TIMEOUT="soonish"))
    assert result.returncode == 2 and "ORCHESTRA_CREW_TIMEOUT" in result.stderr and "Traceback" not in result.stderr


def test_crew_timeout_reads_durations(monkeypatch, tmp_path):
    from bot.settings import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRA_CREW_TIMEOUT", "90s")
    assert load_settings().crew_timeout == timedelta(seconds=90)
    monkeypatch.delenv("ORCHESTRA_CREW_TIMEOUT")
    assert load_settings().crew_timeout == timedelta(minutes=10)


def test_without_the_crew_extra_the_answer_is_the_install_command(tmp_path):
    fake = tmp_path / "site"
    (fake / "crewai").mkdir(parents=True)
    (fake / "crewai" / "__init__.py").write_text("raise ImportError('No module named crewai')\n")
    env = clean_env(tmp_path)
    env["PYTHONPATH"] = f"{fake}:{env['PYTHONPATH']}"
    result = orchestra(tmp_path, "crew", "grow the Q3 pipeline", "--json", env=env)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert INSTALL in report["error"] and "Traceback" not in result.stderr


# --- the terminal -------------------------------------------------------------------------------


def test_terminal_crew_and_crew_plan(tmp_path):
    result = chat(
        tmp_path,
        "/crew complexity=extreme grow it",
        "/crew research low: why did churn rise in Q3",
        "/investigate intermittent 401s on checkout after the Tuesday deploy",
        "/crew plan",
    )
    assert result.returncode == 0
    out = result.stdout
    assert "Complexity is one of low, medium, high" in out  # a bad option: told, nothing started
    assert "Crew terminal-crew1: why did churn rise in Q3" in out
    assert "Specialist researcher is working on" in out and "crew result" in out and "crew review" in out
    assert "/crew plan" in out.split("/investigate intermittent")[1]  # the planner turn offers the hand-off
    handed = out.split("you › /crew plan")[1]
    assert "crew plan" in handed and "crew result" in handed  # the second crew works from the plan, in its thread
    crews = [t for t in json.loads(orchestra(tmp_path, "memory", "export").stdout)["threads"] if t["kind"] == "crew"]
    assert [c["id"] for c in crews] == ["terminal-crew1", "terminal-crew2"]
    assert "Carry out the plan of investigation terminal-1" in crews[1]["title"]


# --- the team (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(("domain", "lead"), [
    ("sales", "karen"), ("marketing", "karen"), ("project", "karen"),
    ("research", "sophia"), ("data", "sophia"), ("content", "sophia"), ("general", "cherry"),
])
def test_the_orchestrator_follows_the_domain(domain, lead):
    plan = assemble(crew_request("the work", domain, "low"), PersonaRegistry.defaults())
    assert plan.orchestrator == lead


@pytest.mark.parametrize(("domain", "other"), [
    ("sales", "marketing"), ("research", "data"), ("content", "research"), ("project", "content"), ("data", "research"),
])
def test_a_high_crew_borrows_its_support_from_the_complementary_domain(domain, other):
    plan = assemble(crew_request("the work", domain, "high"), PersonaRegistry.defaults())
    assert [(a.seniority, a.domain) for a in plan.agents] == [("senior", domain), ("expert", domain), ("mid-level", other)]
    assert len(plan.tasks) == 3 and plan.tasks[-1].agent == plan.agents[0].role  # the lead synthesises


def test_team_size_follows_complexity_and_agents_carry_the_orchestrators_traits():
    personas = PersonaRegistry.defaults()
    low = assemble(crew_request("grow the pipeline", "sales", "low"), personas)
    medium = assemble(crew_request("grow the pipeline", "sales", "medium"), personas)
    assert [a.seniority for a in low.agents] == ["specialist"]
    assert [a.seniority for a in medium.agents] == ["senior", "mid-level"]
    karen = personas["karen"]
    for agent in medium.agents:
        assert "recruited by Karen" in agent.backstory and karen.role in agent.backstory
        assert agent.tools == ("channel_memory", "thread_history")
    named = assemble(crew_request("grow the pipeline", "sales", "low"), personas, personas["sophia"])
    assert named.orchestrator == "sophia" and "recruited by Sophia" in named.agents[0].backstory
    inferred = assemble(crew_request("why is our data pipeline slow", None, "low"), personas)
    assert inferred.domain == "data" and inferred.orchestrator == "sophia"


def test_a_process_killed_mid_crew_reports_it_on_the_next_start_and_never_runs_it_again(tmp_path):
    # SIGKILL just after the platform took the crew's first progress post (its "started" mark),
    # before that post was recorded: as a power cut would, with the crew about to start
    env = clean_env(tmp_path, _ORCHESTRA_CRASH_AT="posted:3")
    killed = orchestra(tmp_path, "crew", "grow the Q3 pipeline", "--domain", "sales", "--complexity", "low", env=env)
    assert killed.returncode == -9
    assert "Specialist sales strategist is working on" in killed.stdout

    result = chat(tmp_path)  # the terminal chat resumes the platform's unfinished work at start-up
    assert "Resuming 1 unfinished task(s)" in result.stdout
    assert "Karen here: the crew didn't finish. I was restarted while the crew was working" in result.stdout
    exported = json.loads(orchestra(tmp_path, "memory", "export").stdout)
    crew = next(t for t in exported["threads"] if t["kind"] == "crew")
    assert crew["status"] == "paused"
    assert [t["mode"] for t in crew["turns"] if t["role"] == "persona"] == ["crew-plan"]  # no result: never ran
    assert [t["status"] for t in exported["tasks"]] == ["failed"]
