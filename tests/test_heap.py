"""The collector as the real bot sets it: thresholds for bursts from the start (`bot.heap`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.heap import THRESHOLDS

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = ("SLACK_", "DISCORD_", "NOTION_", "ORCHESTRA_", "OPENAI_", "ANTHROPIC_")


def test_the_running_bot_collects_with_the_burst_thresholds(tmp_path) -> None:
    """The terminal bot (no chat tokens), run to the end of its input: by then the collector has
    the thresholds `bot.heap` sets (Python's own, 700/10/10, cost a sixth of a burst's CPU)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    env.update(ORCHESTRA_DB=str(tmp_path / "m.db"), PYTHONPATH=str(ROOT))
    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('thresholds', *gc.get_threshold(), file=sys.stderr))\n"
        "from bot.cli import main\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, input="", capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("thresholds"))
    assert tuple(int(v) for v in line.split()[1:]) == THRESHOLDS
