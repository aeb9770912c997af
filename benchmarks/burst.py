"""What the burst benchmarks (`bench_slack.py`, `bench_discord.py`) share: a model that takes a
fixed time and answers in prose, and the percentile they report."""

from __future__ import annotations

import asyncio

from engine.ports import ModelRequest, ModelResponse, Usage


class SlowModel:
    """A local model that takes `delay` seconds and answers in prose."""

    name = "bench"

    def __init__(self, delay: float):
        self.delay = delay

    async def generate(self, request: ModelRequest) -> ModelResponse:
        await asyncio.sleep(self.delay)
        return ModelResponse(
            text="Sign-ups usually dip on Mondays because campaigns end on Fridays; check the funnel by source.",
            usage=Usage(input_tokens=len(request.system) // 4, output_tokens=25),
            model="bench-1s",
        )

    async def aclose(self) -> None:
        return None


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
