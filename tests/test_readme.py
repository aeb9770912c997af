"""The README's examples print what they say: its terminal sample and its command-line lines, run
as a new user would run them (a real `orchestra` process, the offline rehearsal)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.test_cli import clean_env, orchestra
from tests.test_terminal import chat

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def section_block(heading: str, fence: str) -> str:
    """The first fenced block of `fence` under `heading`."""
    after = README.split(heading, 1)[1]
    return re.search(rf"```{fence}\n(.*?)```", after, re.S).group(1)


def test_the_terminal_sample_prints_what_the_readme_shows(tmp_path):
    sample = section_block("### In the terminal", "text")
    typed, shown = [], []
    for line in sample.splitlines():
        line = line.split("←", 1)[0].rstrip()
        if line.startswith("you › "):
            typed.append(line.removeprefix("you › "))
        elif line.strip() and line.strip() not in ("...", "…"):
            shown.append((len(typed), line.strip()))
    assert typed and shown
    out = chat(tmp_path, *typed).stdout
    echoes, at = [], 0  # where each typed line was echoed back (piped input is shown as typed)
    for line in typed:
        at = out.find("you › " + line, at)
        assert at >= 0, f"the chat never got to {line!r}:\n{out}"
        echoes.append(at)
    position = 0  # each shown line appears in the order shown, after the line typed before it
    for before, expected in shown:
        found = out.find(expected, max(position, echoes[before - 1] if before else 0))
        assert found >= 0, f"README shows {expected!r} after {typed[before - 1]!r}; the chat printed:\n{out}"
        position = found


def test_the_command_line_examples_run_as_shown(tmp_path):
    block = section_block("### From the command line", "sh")
    commands = []
    for line in block.splitlines():
        line = line.split(" # ", 1)[0].strip()
        if line.startswith("orchestra ") and "..." not in line:
            commands += [shlex.split(part.strip()) for part in line.split("  |  ")]
    env = clean_env(tmp_path)
    ran = []
    for argv in commands:
        argv = argv[1:]
        result = orchestra(tmp_path, *argv, env=env)
        assert result.returncode == 0, f"{shlex.join(argv)}: {result.stderr}"
        assert "Traceback" not in result.stderr
        ran.append(argv[0])
    assert {"investigate", "reply", "challenge", "plan", "close", "personas"} <= set(ran)
    # the first investigation in #payments is payments-1, as the README says
    listed = orchestra(tmp_path, "memory", "list", "--channel", "payments", env=env).stdout
    assert "payments-1" in listed and "payments-2" in listed
