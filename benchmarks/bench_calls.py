"""What one outgoing HTTP call costs the bot in CPU: the model call through the OpenAI SDK and a
Slack Web API call through slack_sdk, each beside the same request sent on bare aiohttp (the floor
any client pays: building the request, the socket, reading the reply).

A mention makes three such calls (the placeholder, the model call, the update), so this is where
most of a mention's CPU goes once the engine's own work is small. The stand-ins (the local Slack
and OpenAI servers, `benchmarks/slack_standins.py`, the model answering at once) run in another
process, so only the client's CPU is counted. Calls are made `--concurrency` at a time over
connections kept alive, as under a burst; the figure is this process's CPU divided by the calls.

    python benchmarks/bench_calls.py [--calls 2000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = "You are Sophia, a careful researcher. Answer in JSON. " * 40
MESSAGE = {
    "channel": "C1", "text": "Sign-ups usually dip on Mondays. " * 8, "link_names": False, "parse": "none",
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Sign-ups usually dip on Mondays. " * 8}}],
    "username": "Sophia", "icon_emoji": ":owl:",
}


async def cpu_per_call(calls: int, concurrency: int, call: Callable[[], Awaitable[Any]]) -> float:
    """CPU milliseconds per call, after a warm-up that opens the connections."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one() for _ in range(concurrency)))
    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    return (time.process_time() - started) / calls * 1000


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()

    import aiohttp
    import openai
    from slack_sdk.web.async_client import AsyncWebClient

    from engine.providers._shared import pooled_client

    standins = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "benchmarks" / "slack_standins.py"), "--model-delay", "0",
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert standins.stdout is not None
    urls = json.loads(await asyncio.wait_for(standins.stdout.readline(), 30))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency, keepalive_timeout=60))
    model = openai.AsyncOpenAI(api_key="sk-bench", base_url=urls["openai"], max_retries=0,
                               http_client=pooled_client(openai, args.concurrency))
    slack = AsyncWebClient(token="xoxb-bench", base_url=urls["slack_api"], session=session)
    body = {"model": "bench", "max_tokens": 800, "temperature": 0.7,
            "messages": [{"role": "system", "content": PROMPT}, {"role": "user", "content": "why did sign-ups drop?"}]}
    openai_url = urls["openai"].rstrip("/") + "/chat/completions"
    slack_url = urls["slack_api"].rstrip("/") + "/chat.postMessage"

    async def bare(url: str, payload: dict[str, Any], token: str) -> None:
        async with session.post(url, json=payload, headers={"Authorization": f"Bearer {token}"}) as response:
            await response.json()

    rows = [
        ("model call, OpenAI SDK (client.post, its aiohttp transport)",
         lambda: model.post("/chat/completions", body=body, cast_to=object)),
        ("model call, bare aiohttp (the floor)", lambda: bare(openai_url, body, "sk-bench")),
        ("chat.postMessage, slack_sdk", lambda: slack.chat_postMessage(**MESSAGE)),
        ("chat.postMessage, bare aiohttp (the floor)", lambda: bare(slack_url, MESSAGE, "xoxb-bench")),
    ]
    try:
        print(f"CPU per outgoing call, {args.calls} calls, {args.concurrency} at a time, connections kept alive; "
              f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for name, call in rows:
            print(f"  {name:62s} {await cpu_per_call(args.calls, args.concurrency, call):6.3f} ms")
    finally:
        await model.close()
        await session.close()
        standins.terminate()
        await standins.wait()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
