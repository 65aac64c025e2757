# SPDX-License-Identifier: GPL-3.0-or-later
"""The bake-tag schema: the tags every temporary resource carries, its creation time, its name."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ansible_collections.bakery.ami.plugins.module_utils._bake_tags import (
    CREATED_AT_TAG,
    bake_tags,
    copy_source_value,
    created_at,
    temporary_name,
)


def test_a_temporary_resource_carries_the_bake_id_and_the_temporary_tag() -> None:
    assert bake_tags("web-1") == {"bakery:bake-id": "web-1", "bakery:temporary": "true"}
    assert bake_tags("web-1", temporary=False, source_ami="ami-1") == {"bakery:bake-id": "web-1", "bakery:source-ami": "ami-1"}


def test_created_at_is_written_in_utc_and_read_back() -> None:
    made = datetime(2027, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    tags = bake_tags("web-1", created_at=made)
    assert tags[CREATED_AT_TAG] == "2027-01-02T01:04:05Z"
    assert created_at(tags) == made


def test_a_missing_or_foreign_created_at_is_no_time() -> None:
    assert created_at({}) is None
    assert created_at({CREATED_AT_TAG: "yesterday"}) is None


def test_names() -> None:
    assert temporary_name("web-1") == "bakery-web-1"
    assert copy_source_value("eu-west-1", "ami-1") == "eu-west-1:ami-1"
