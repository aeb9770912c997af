"""Tests that read settings start from none: no setting from the machine running them, and a
working directory of their own (so no stray `.env` is read). Import the fixture into a test module
to make it apply there (it is autouse):

    from tests.settings_env import clean_settings_env  # noqa: F401 - autouse
"""

from __future__ import annotations

import os

import pytest

#: The environment variables Orchestra's settings read.
PREFIXES = ("ORCHESTRA_", "ANTHROPIC_", "OPENAI_", "SLACK_", "DISCORD_", "NOTION_")


@pytest.fixture(autouse=True)
def clean_settings_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith(PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
