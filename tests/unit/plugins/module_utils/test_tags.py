# SPDX-License-Identifier: GPL-3.0-or-later
"""The one tag helper: what changes, and the calls that change it."""
from __future__ import annotations

from typing import Any

from botocore.stub import Stubber

from ansible_collections.bakery.ami.plugins.module_utils._tags import change_tags, tag_changes, tag_specifications, tags_after, tags_to_dict


def test_tag_changes() -> None:
    current = {"a": "1", "b": "2", "aws:cloudformation:stack": "x"}
    assert tag_changes(current, {"a": "1", "c": "3"}, purge=True) == ({"c": "3"}, ["b"])
    assert tag_changes(current, {"a": "9"}, purge=False) == ({"a": "9"}, [])
    assert tag_changes(current, None, purge=True) == ({}, [])
    # Reserved aws: tags are never removed, even when purging to nothing.
    assert tag_changes(current, {}, purge=True) == ({}, ["a", "b"])


def test_tags_after_applies_the_changes() -> None:
    current = {"a": "1", "b": "2"}
    to_set, to_remove = tag_changes(current, {"a": "9", "c": "3"}, purge=True)
    assert tags_after(current, to_set, to_remove) == {"a": "9", "c": "3"}
    assert tags_after(current, {}, []) == current


def test_tag_specifications_skip_empty() -> None:
    specs = tag_specifications([("image", {"a": "1"}), ("snapshot", {}), ("volume", None)])
    assert specs == [{"ResourceType": "image", "Tags": [{"Key": "a", "Value": "1"}]}]


def test_tags_to_dict() -> None:
    assert tags_to_dict([{"Key": "a", "Value": "1"}]) == {"a": "1"}
    assert tags_to_dict(None) == {}


def test_change_tags_removes_then_sets(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    stubber.add_response("delete_tags", {}, {"Resources": ["ami-1"], "Tags": [{"Key": "old"}]})
    stubber.add_response("create_tags", {}, {"Resources": ["ami-1"], "Tags": [{"Key": "role", "Value": "web"}]})
    with stubber:
        change_tags(client, ["ami-1"], {"role": "web"}, ["old"])
        stubber.assert_no_pending_responses()


def test_change_tags_without_changes_makes_no_call(stubbed_ec2: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed_ec2
    with stubber:  # no response queued: any call would fail
        change_tags(client, ["ami-1"], {}, [])
        change_tags(client, [], {"role": "web"}, ["old"])
