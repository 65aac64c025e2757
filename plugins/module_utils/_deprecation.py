# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The deprecate_at / deprecate_in options shared by ami_create and ami_copy."""
from __future__ import annotations

import datetime

from ansible_collections.bakery.ami.plugins.module_utils._durations import (
    DURATION_HELP,
    iso_utc,
    parse_duration,
    parse_time,
    to_minute,
    utcnow,
)


def deprecation_problem(deprecate_at: str | None, deprecate_in: str | None) -> str | None:
    """A one-sentence reason the options are refused (the value and what is allowed), or None."""
    if deprecate_at:
        when = parse_time(deprecate_at)
        if when is None:
            return f"Invalid deprecate_at {deprecate_at!r}: give an ISO 8601 date or date-time such as 2027-01-31T00:00:00Z."
        if when <= utcnow():
            return f"deprecate_at {deprecate_at!r} is in the past: give a time in the future."
    if deprecate_in and parse_duration(deprecate_in) is None:
        return f"Invalid deprecate_in {deprecate_in!r}: give {DURATION_HELP}."
    return None


def wanted_deprecation(
    deprecate_at: str | None,
    deprecate_in: str | None,
    current: str | None,
    now: datetime.datetime | None = None,
) -> str | None:
    """The deprecation time to set (ISO, to the minute), or None when nothing is to change.

    deprecate_in only applies to an image without a deprecation time, so a rerun does not move it.
    Options already checked by deprecation_problem.
    """
    if deprecate_at:
        wanted = to_minute(parse_time(deprecate_at))  # type: ignore[arg-type]
        have = parse_time(current) if current else None
        if have is not None and to_minute(have) == wanted:
            return None
        return iso_utc(wanted)
    if deprecate_in and not current:
        return iso_utc(to_minute((now or utcnow()) + parse_duration(deprecate_in)))  # type: ignore[operator]
    return None
