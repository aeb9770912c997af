"""Slack under a burst, as a user sees it: cold and warm bursts of mentions (one channel each)
through Socket Mode and HTTP, against stand-ins in their own process, a model that takes 1 s.

The bot is the real `orchestra` process (the CLI, its composition root, the OpenAI SDK talking
HTTP to the local OpenAI server), started fresh for each size and mode. The stand-ins (the local
Slack and the model server, `benchmarks/slack_standins.py`) run in another process, so their CPU
is not counted as the bot's. Per size, mode and burst it prints:

  ready      time from starting the process to "Slack: connected" (cold runs)
  ack        envelope sent → ack (Socket Mode), request sent → 200 (HTTP; from before its
             connection is opened, each request on a new one, written on a bare socket so the
             stand-in's own HTTP client costs little: `--http-client aiohttp` for the old one)
  answer     mention sent → her answer replacing "thinking…" (`chat.update`): p50 / p99
  answers/s  mentions / (last answer − first mention)
  cpu/mention the bot process's CPU (user+system, /proc) during the burst ÷ mentions
  gap        the longest stretch with no post or update while answers were pending
  peak MB    the bot's peak resident memory (VmHWM)

A cold burst is the first one, sent the moment the bot says it is connected; a warm burst
follows on the same process once the first is answered.

    python benchmarks/bench_slack.py                  # 50, 200, 1000 × Socket Mode, HTTP × cold, warm
    python benchmarks/bench_slack.py --quick          # 50 only
    python benchmarks/bench_slack.py --sizes 200 --modes socket
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from benchmarks.burst import percentile  # noqa: E402

SECRET = "bench-signing-secret"
TICKS = os.sysconf("SC_CLK_TCK")
#: Targets from issue 12, by burst size: (ack p99, answer p99) in seconds, cold start.
TARGETS = {200: (0.100, 2.0), 1000: (0.150, 3.0)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_standins(model_delay: float) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "benchmarks" / "slack_standins.py"), "--model-delay", str(model_delay),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    return process, json.loads(line)


async def start_bot(mode: str, urls: dict[str, str], db: Path | str, port: int, cwd: Path | None = None,
                    extra_env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, float]:
    """The real bot; returns once it says it is connected, with the seconds that took.

    `db` is a SQLite path (the process runs in its folder) or a PostgreSQL URL (give `cwd`)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ORCHESTRA_", "OPENAI_", "ANTHROPIC_", "DISCORD_", "NOTION_"))
    }
    env.update({
        "PYTHONPATH": str(ROOT), "ORCHESTRA_DB": str(db), "ORCHESTRA_PROVIDER": "openai",
        "OPENAI_BASE_URL": urls["openai"], "OPENAI_API_KEY": "sk-bench-not-a-key", "ORCHESTRA_MODEL_MAX_RETRIES": "0",
        "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_API_URL": urls["slack_api"], "ORCHESTRA_LOG_LEVEL": "WARNING",
    })
    args = ["--slack-http", "--port", str(port)] if mode == "http" else []
    if mode == "http":
        env["SLACK_SIGNING_SECRET"] = SECRET
    else:
        env["SLACK_APP_TOKEN"] = "xapp-bench"
    env.update(extra_env or {})
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())", *args,
        cwd=cwd or Path(db).parent, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen = []
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), 60)
        if not raw:
            raise RuntimeError("the bot exited before it was ready:\n" + "".join(seen))
        text = raw.decode(errors="replace")
        seen.append(text)
        if "Slack: connected" in text:
            ready = time.monotonic() - started
            break
    asyncio.get_running_loop().create_task(_drain(process))
    if mode == "http":  # "connected" is printed once the port listens; nothing else to wait for
        pass
    return process, ready


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    while await process.stdout.readline():
        pass


async def stop_bot(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


def row(label: str, r: dict, cpu: float, ready: float | None, peak: float) -> str:
    acks = [a * 1000 for a in r["acks"]]
    answers = r["answers"]
    span = r["last_answer"] - r["started"]
    rate = len(answers) / span if span > 0 else float("nan")
    missing = f"  !! {r['unanswered']} unanswered" if r["unanswered"] else ""
    return (
        f"  {label:<18} {'' if ready is None else f'{ready:5.2f}':>6} "
        f"{percentile(acks, 50):7.1f} {percentile(acks, 99):7.1f} "
        f"{percentile(answers, 50):7.2f} {percentile(answers, 99):7.2f} "
        f"{rate:8.1f} {cpu * 1000 / r['n']:8.2f} {r['longest_gap']:6.2f} {peak:7.0f}{missing}"
    )


HEADER = (
    f"  {'burst':<18} {'ready':>6} {'ack p50':>7} {'ack p99':>7} {'ans p50':>7} {'ans p99':>7} "
    f"{'answers/s':>8} {'cpu ms/m':>8} {'gap s':>6} {'peak MB':>7}\n"
    f"  {'':<18} {'s':>6} {'ms':>7} {'ms':>7} {'s':>7} {'s':>7}"
)


async def start_profile(pid: int, out: str) -> asyncio.subprocess.Process:
    """py-spy (installed separately, not a project dependency) on the bot, raw folded stacks."""
    return await asyncio.create_subprocess_exec(
        "py-spy", "record", "--pid", str(pid), "-r", "1000", "--format", "raw", "-o", out, "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )


async def stop_profile(spy: asyncio.subprocess.Process) -> None:
    spy.send_signal(signal.SIGINT)
    await asyncio.wait_for(spy.wait(), 30)


async def run_one(mode: str, n: int, urls: dict[str, str], tmp: Path, run: list[int], http: aiohttp.ClientSession,
                  profile: str | None = None, client: str = "lean") -> list[str]:
    port = free_port()
    db = tmp / f"{mode}-{n}" / "orchestra.db"
    db.parent.mkdir(parents=True)
    bot, ready = await start_bot(mode, urls, db, port)
    lines, verdicts = [], []
    try:
        for burst in ("cold", "warm"):
            run[0] += 1
            spy = await start_profile(bot.pid, f"{profile}-{mode}-{n}-{burst}.txt") if profile else None
            if spy is not None:
                await asyncio.sleep(1.0)  # py-spy attaches
            before = cpu_seconds(bot.pid)
            spec = {"mode": mode, "n": n, "run": str(run[0]), "target": f"http://127.0.0.1:{port}/slack/events", "secret": SECRET,
                    "client": client}
            async with http.post(urls["control"] + "/bench/burst", json=spec, timeout=aiohttp.ClientTimeout(total=600)) as response:
                result = await response.json()
            await asyncio.sleep(0.3)  # the last records after the last update
            cpu = cpu_seconds(bot.pid) - before
            if spy is not None:
                await stop_profile(spy)
            lines.append(row(f"{mode} {n} {burst}", result, cpu, ready if burst == "cold" else None, peak_mb(bot.pid)))
            if burst == "cold" and n in TARGETS:
                ack_target, answer_target = TARGETS[n]
                ack99 = percentile(result["acks"], 99)
                ans99 = percentile(result["answers"], 99)
                verdicts.append(
                    f"  {mode} {n} cold: ack p99 {ack99 * 1000:.0f} ms ≤ {ack_target * 1000:.0f} ms "
                    f"{'met' if ack99 <= ack_target else 'MISSED'}; answer p99 {ans99:.2f} s ≤ {answer_target:.1f} s "
                    f"{'met' if ans99 <= answer_target and not result['unanswered'] else 'MISSED'}"
                )
            calls = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(result["slack_calls"].items()))
            others = ", ".join(f"{k} {v}" for k, v in sorted(result.get("other_slack_calls", {}).items())) or "none"
            lines.append(f"  {'':<18} Slack calls per mention: {calls}; model calls {result['model_calls']}; "
                         f"other Slack calls: {others}")
    finally:
        await stop_bot(bot)
    return lines + verdicts


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--modes", nargs="+", choices=["socket", "http"], default=["socket", "http"])
    parser.add_argument("--model-delay", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="50 mentions only")
    parser.add_argument("--profile", metavar="PREFIX",
                        help="record each burst with py-spy (installed separately) into PREFIX-MODE-N-BURST.txt")
    parser.add_argument("--http-client", choices=["lean", "aiohttp"], default="lean",
                        help="how the stand-in sends HTTP mode's requests: a new connection each, written on asyncio "
                             "streams (lean), or aiohttp's client, whose own CPU delays the later requests of a burst")
    args = parser.parse_args()
    sizes = [50] if args.quick else args.sizes
    load = os.getloadavg()
    print(f"Slack bursts, one mention per channel; model {args.model_delay:.1f} s over HTTP (OpenAI SDK); "
          f"load before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; "
          f"HTTP requests sent with the {args.http_client} client")
    standins, urls = await start_standins(args.model_delay)
    run = [0]
    out: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with aiohttp.ClientSession() as http:
                print(HEADER, flush=True)
                for mode in args.modes:
                    for n in sizes:
                        lines = await run_one(mode, n, urls, Path(tmp), run, http, args.profile, args.http_client)
                        for line in lines:
                            if line.startswith("  ") and ("met" in line or "MISSED" in line) and ": ack p99" in line:
                                out.append(line)
                            else:
                                print(line, flush=True)
    finally:
        standins.terminate()
        await standins.wait()
    load = os.getloadavg()
    print(f"load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if out:
        print("targets (issue 12, cold start):")
        print("\n".join(out))
    return 1 if any("MISSED" in line for line in out) else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
