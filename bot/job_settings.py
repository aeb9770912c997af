"""The scheduled jobs' setting values: durations, a daily time with its zone, digest channels.

Parsed once, here, at start-up (the `Settings` validators call these), so a typo stops start-up
with the setting's name instead of surfacing at 09:00 the next morning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DURATION = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
DURATION_HELP = "a number and a unit, e.g. 90s, 45m, 4h, 1d (or combined: 1h30m)"
PLATFORMS = ("slack", "discord", "local")


def parse_duration(text: str) -> timedelta:
    """`90s`, `45m`, `4h`, `1d`, `1h30m` → a positive timedelta; ValueError saying what to write."""
    raw = text.strip().lower().replace(" ", "")
    if not raw or _DURATION.sub("", raw):
        raise ValueError(f"{text.strip()[:40]!r} is not a duration: write {DURATION_HELP}")
    total = timedelta()
    for number, unit in _DURATION.findall(raw):
        total += timedelta(**{_UNITS[unit]: int(number)})
    if total <= timedelta():
        raise ValueError(f"{text.strip()[:40]!r} is no time at all: write {DURATION_HELP}")
    return total


def format_duration(value: timedelta) -> str:
    """The inverse of `parse_duration`: 1h30m, 4h, 1d, 90s."""
    seconds, parts = int(value.total_seconds()), []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class DailyTime:
    hour: int
    minute: int
    zone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def __str__(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d} {self.zone}"


def parse_daily_time(text: str) -> DailyTime:
    """`09:00 Europe/Paris` (zone optional: UTC) → DailyTime; ValueError saying what to write."""
    example = "a time and a time zone, e.g. 09:00 Europe/Paris"
    parts = text.split()
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", parts[0]) if parts else None
    if match is None or len(parts) > 2:
        raise ValueError(f"{text.strip()[:40]!r} is not a time of day: write {example}")
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise ValueError(f"{parts[0]!r} is not a time of day (00:00 to 23:59): write {example}")
    zone = parts[1] if len(parts) == 2 else "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{zone[:40]!r} is not a time zone: use an IANA name, e.g. Europe/Paris, America/New_York, UTC") from None
    return DailyTime(hour, minute, zone)


def parse_channels(text: str) -> list[tuple[str, str | None, str]]:
    """`slack:C123, discord:123, local:terminal` → (platform, workspace, channel) tuples.

    `platform:workspace/channel` names the workspace; without it the workspace is None (any:
    Slack and Discord channel ids are unique), except `local`, whose workspace is `local`."""
    example = "a comma list of platform:channel, e.g. slack:C0123ABCD, discord:1234567890, local:terminal"
    channels: list[tuple[str, str | None, str]] = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        platform, sep, place = item.partition(":")
        platform = platform.strip().lower()
        if not sep or platform not in PLATFORMS or not place.strip():
            raise ValueError(f"{item[:40]!r} is not a channel: write {example}")
        workspace, _, channel = place.strip().rpartition("/")
        channel = channel.strip().lstrip("#")
        if not channel:
            raise ValueError(f"{item[:40]!r} names no channel: write {example}")
        entry = (platform, workspace.strip() or ("local" if platform == "local" else None), channel)
        if entry not in channels:
            channels.append(entry)
    return channels
