"""`orchestra jobs`, `orchestra jobs run NAME`, the jobs' settings, and the scheduler in the running
bot: real processes, a real SQLite file, the offline provider and the terminal."""

from __future__ import annotations

import sqlite3

import pytest

from tests.test_cli import clean_env, orchestra

DIGEST = {"ORCHESTRA_DIGEST_AT": "09:00 Europe/Paris", "ORCHESTRA_DIGEST_CHANNELS": "local:terminal"}


def job_runs(tmp_path) -> list[tuple]:
    con = sqlite3.connect(tmp_path / "memory.db")
    try:
        return con.execute("SELECT job, outcome, detail FROM job_runs ORDER BY job, due").fetchall()
    finally:
        con.close()


def test_jobs_lists_each_job_with_its_schedule_last_and_next_run(tmp_path):
    result = orchestra(tmp_path, "jobs", env=clean_env(tmp_path, ORCHESTRA_NUDGE_AFTER="90m", **DIGEST))
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert lines["JOB"].split()[:2] == ["JOB", "SCHEDULE"] and "NEXT RUN" in lines["JOB"]
    assert set(lines) == {"JOB", "refresh-personas", "nudge-waiting", "digest", "prune-memory"}
    assert "every 5m (nudge after 1h30m)" in lines["nudge-waiting"]
    assert "daily at 09:00 Europe/Paris to local:terminal" in lines["digest"]
    assert "keep 90 days" in lines["prune-memory"]
    assert all(line.rstrip().endswith("UTC") for name, line in lines.items() if name != "JOB")  # next run


def test_no_digest_and_no_retention_when_not_asked_for(tmp_path):
    result = orchestra(tmp_path, "jobs", env=clean_env(tmp_path, ORCHESTRA_RETENTION_DAYS="0"))
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["JOB", "refresh-personas", "nudge-waiting"]
    assert "ORCHESTRA_DIGEST_AT" in result.stderr


def test_jobs_run_runs_one_job_now_and_records_it(tmp_path):
    env = clean_env(tmp_path)
    result = orchestra(tmp_path, "jobs", "run", "refresh-personas", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refresh-personas: ")
    assert [(job, outcome) for job, outcome, _ in job_runs(tmp_path)] == [("refresh-personas", "ok")]
    listed = orchestra(tmp_path, "jobs", env=env)
    line = next(line for line in listed.stdout.splitlines() if line.startswith("refresh-personas"))
    assert line.split()[5] == "UTC" and result.stdout.split(": ", 1)[1].strip() in line  # last run, outcome


def test_jobs_run_an_unknown_job_names_the_jobs(tmp_path):
    result = orchestra(tmp_path, "jobs", "run", "digest")
    assert result.returncode == 2
    assert "ORCHESTRA_DIGEST_AT" in result.stderr and "refresh-personas, nudge-waiting" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("setting, value", [
    ("ORCHESTRA_NUDGE_AFTER", "4 hours please"),
    ("ORCHESTRA_NUDGE_AFTER", "0m"),
    ("ORCHESTRA_PERSONAS_REFRESH", "5"),
    ("ORCHESTRA_DIGEST_AT", "09:00 Mars/Olympus"),
    ("ORCHESTRA_DIGEST_AT", "25:00 UTC"),
    ("ORCHESTRA_DIGEST_CHANNELS", "teams:general"),
])
def test_a_bad_job_setting_stops_start_up_naming_it(tmp_path, setting, value):
    env = clean_env(tmp_path, **{**DIGEST, setting: value})
    for args in (("jobs",), ()):
        result = orchestra(tmp_path, *args, env=env, input="")
        assert result.returncode == 2, result.stderr
        assert setting in result.stderr and "Traceback" not in result.stderr
        assert any(part in result.stderr for part in value.split())  # what was given, so it can be found


def test_a_digest_time_needs_its_channels(tmp_path):
    result = orchestra(tmp_path, "jobs", env=clean_env(tmp_path, ORCHESTRA_DIGEST_AT="09:00"))
    assert result.returncode == 2
    assert "ORCHESTRA_DIGEST_CHANNELS" in result.stderr


def test_the_deprecated_stalled_minutes_still_set_the_nudge_threshold(tmp_path):
    result = orchestra(tmp_path, "jobs", env=clean_env(tmp_path, ORCHESTRA_STALLED_AFTER_MINUTES="30"))
    assert result.returncode == 0, result.stderr
    assert "nudge after 30m" in result.stdout


def test_the_running_bot_runs_due_jobs_and_a_restart_does_not_run_them_again(tmp_path):
    """Started with the terminal, the scheduler catches up on what is due, once."""
    env = clean_env(tmp_path, **DIGEST)
    first = orchestra(tmp_path, env=env, input="hello\n")
    assert first.returncode == 0, first.stderr
    runs = job_runs(tmp_path)
    assert "refresh-personas" in {job for job, _, _ in runs}  # due every 5 min: within its grace
    assert all(outcome is not None for _, outcome, _ in runs)  # finished (or skipped) before exit
    second = orchestra(tmp_path, env=env, input="")
    assert second.returncode == 0, second.stderr
    again = job_runs(tmp_path)
    assert len(again) - len(runs) <= len({job for job, _, _ in runs})  # at most a new due time each
    assert len({(job, detail) for job, _, detail in again}) >= 1
