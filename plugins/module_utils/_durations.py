# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Durations such as `30d` and points in time such as `2027-01-01T00:00:00Z`."""
from __future__ import annotations

import datetime
import re

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_RE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
DURATION_HELP = "a whole number followed by m (minutes), h (hours), d (days) or w (weeks), such as 30d"


def parse_duration(text: str) -> datetime.timedelta | None:
    """`30d` as a timedelta; None when `text` is not a duration."""
    match = DURATION_RE.match(str(text))
    if not match:
        return None
    return datetime.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_time(text: str) -> datetime.datetime | None:
    """An ISO 8601 date or date-time as an aware UTC datetime (UTC when no zone is given); None if unreadable."""
    try:
        when = datetime.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def to_minute(when: datetime.datetime) -> datetime.datetime:
    """EC2 keeps deprecation times to the minute, rounding the seconds."""
    rounded = when.replace(second=0, microsecond=0)
    if when.second >= 30:
        rounded += datetime.timedelta(minutes=1)
    return rounded


def iso_utc(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
