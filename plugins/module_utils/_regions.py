# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Region names, checked against botocore's own endpoint data (no API call)."""
from __future__ import annotations

from typing import Iterable, Optional

try:
    import boto3
except ImportError:  # AnsibleAWSModule reports a missing boto3 itself
    boto3 = None


def known_regions() -> set[str]:
    if boto3 is None:
        return set()
    session = boto3.session.Session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return regions


def unknown_regions(regions: Iterable[Optional[str]]) -> list[str]:
    """The names in `regions` that are not EC2 regions."""
    known = known_regions()
    return [r for r in regions if r and r not in known]
