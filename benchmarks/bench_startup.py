"""How fast `orchestra` answers, and which heavy modules each command loads.

    python benchmarks/bench_startup.py [--runs 10]

Prints the median (and min/max) wall time of `orchestra --help`, `orchestra --version` and
`orchestra personas list` over N runs each, then the heavy third-party modules each command has
imported by the time it exits. Uses the installed `orchestra` script when it sits next to this
Python, else `python -m bot.cli`. The environment is cleared of keys and tokens (offline).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = [
    "pydantic", "pydantic_settings", "yaml", "aiosqlite", "platformdirs", "dotenv",
    "anthropic", "openai", "httpx", "slack_bolt", "slack_sdk", "aiohttp", "discord",
    "notion_client", "crewai", "apscheduler", "engine", "adapters",
]
COMMANDS = [["--help"], ["--version"], ["personas", "list"]]


def command_line() -> list[str]:
    script = Path(sys.executable).with_name("orchestra")
    if script.exists():
        return [str(script)]
    found = shutil.which("orchestra")
    return [found] if found else [sys.executable, "-m", "bot.cli"]


def clean_env(workdir: str) -> dict[str, str]:
    prefixes = ("ORCHESTRA_", "ANTHROPIC_", "OPENAI_", "SLACK_", "DISCORD_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["ORCHESTRA_DB"] = os.path.join(workdir, "bench.db")
    env["PYTHONPATH"] = str(ROOT)
    return env


def wall_times(cmd: list[str], env: dict[str, str], cwd: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return times


def heavy_modules(args: list[str], env: dict[str, str], cwd: str) -> list[str]:
    code = (
        "import sys\n"
        "from bot.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('\\n@@', ' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True).stdout
    line = next((l for l in reversed(out.splitlines()) if l.startswith("@@")), "@@")
    return line[2:].split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    opts = parser.parse_args()
    cmd = command_line()
    print(f"command: {' '.join(cmd)}  ·  {opts.runs} runs each  ·  Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as workdir:
        env = clean_env(workdir)
        wall_times([*cmd, "--help"], env, workdir, 2)  # warm the OS file cache and .pyc files
        for args in COMMANDS:
            times = wall_times([*cmd, *args], env, workdir, opts.runs)
            label = "orchestra " + " ".join(args)
            print(f"{label:<28} median {statistics.median(times) * 1000:7.1f} ms"
                  f"   (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})")
        print()
        for args in COMMANDS:
            loaded = heavy_modules(args, env, workdir)
            label = "orchestra " + " ".join(args)
            print(f"{label:<28} heavy modules: {', '.join(loaded) or 'none (standard library only)'}")


if __name__ == "__main__":
    main()
