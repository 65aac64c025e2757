# SPDX-License-Identifier: GPL-3.0-or-later
"""Durations such as 30d and ISO 8601 times, as the modules read them."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.bakery.ami.plugins.module_utils._durations import iso_utc, parse_duration, parse_time, to_minute, utcnow

UTC = datetime.UTC


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * 86400), ("2w", 14 * 86400), ("90m", 5400), (" 12 h ", 12 * 3600), ("0d", 0)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["30", "-1d", "1.5d", "1y", "d", ""])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_times_are_utc() -> None:
    assert parse_time("2027-01-31") == datetime.datetime(2027, 1, 31, tzinfo=UTC)
    assert parse_time("2027-01-31T10:00:00Z") == datetime.datetime(2027, 1, 31, 10, tzinfo=UTC)
    assert parse_time("2027-01-31T10:00:00+02:00") == datetime.datetime(2027, 1, 31, 8, tzinfo=UTC)
    assert parse_time("soon") is None


def test_to_minute_rounds_the_seconds() -> None:
    assert to_minute(datetime.datetime(2027, 1, 1, 0, 0, 31)) == datetime.datetime(2027, 1, 1, 0, 1)
    assert to_minute(datetime.datetime(2027, 1, 1, 0, 0, 29, 999)) == datetime.datetime(2027, 1, 1, 0, 0)
    assert to_minute(datetime.datetime(2027, 12, 31, 23, 59, 45)) == datetime.datetime(2028, 1, 1, 0, 0)


def test_iso_utc() -> None:
    assert iso_utc(datetime.datetime(2027, 1, 31, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))) == "2027-01-31T08:00:00Z"
    assert utcnow().tzinfo is UTC
