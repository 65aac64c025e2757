# SPDX-License-Identifier: GPL-3.0-or-later
"""deprecate_at / deprecate_in: refused with a reason, or turned into the time to set (or none)."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.bakery.ami.plugins.module_utils._deprecation import deprecation_problem, wanted_deprecation

NOW = datetime.datetime(2027, 1, 1, 12, 0, 40, tzinfo=datetime.UTC)


def test_valid_options_have_no_problem() -> None:
    assert deprecation_problem("2099-01-31T00:00:00Z", None) is None
    assert deprecation_problem(None, "90d") is None
    assert deprecation_problem(None, None) is None


@pytest.mark.parametrize(
    ("at", "within", "problem"),
    [
        ("next week", None, "Invalid deprecate_at 'next week': give an ISO 8601 date or date-time"),
        ("2001-01-01", None, "deprecate_at '2001-01-01' is in the past: give a time in the future."),
        (None, "3 months", "Invalid deprecate_in '3 months': give a whole number followed by m (minutes)"),
    ],
)
def test_refused_options_say_why(at: str, within: str, problem: str) -> None:
    reason = deprecation_problem(at, within)
    assert reason is not None and reason.startswith(problem)


def test_deprecate_at_is_set_to_the_minute_unless_already_so() -> None:
    assert wanted_deprecation("2099-01-31T12:00:40Z", None, None) == "2099-01-31T12:01:00Z"
    assert wanted_deprecation("2099-01-31T12:00:40Z", None, "2099-01-31T12:01:00.000Z") is None
    assert wanted_deprecation("2099-01-31T12:00:40Z", None, "2099-06-30T00:00:00.000Z") == "2099-01-31T12:01:00Z"


def test_deprecate_in_counts_from_now_and_never_moves_a_set_time() -> None:
    assert wanted_deprecation(None, "30d", None, now=NOW) == "2027-01-31T12:01:00Z"
    assert wanted_deprecation(None, "30d", "2027-01-15T00:00:00.000Z", now=NOW) is None


def test_no_option_changes_nothing() -> None:
    assert wanted_deprecation(None, None, "2027-01-15T00:00:00.000Z", now=NOW) is None
    assert wanted_deprecation(None, None, None, now=NOW) is None
