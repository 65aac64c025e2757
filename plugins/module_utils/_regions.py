# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Region names, checked against botocore's own endpoint data (no API call)."""
from __future__ import annotations

import json
import os
import re
from typing import Iterable

try:
    import botocore
except ImportError:  # AnsibleAWSModule reports a missing botocore itself
    botocore = None  # type: ignore[assignment]


def _from_endpoint_data() -> set[str] | None:
    """EC2's regions of every partition, read straight from botocore's endpoints.json: what
    Session.get_available_regions answers, without building a resolver (about half a second)."""
    path = os.path.join(os.path.dirname(botocore.__file__), "data", "endpoints.json")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    regions: set[str] = set()
    for partition in data.get("partitions", []):
        region_name = re.compile(partition.get("regionRegex", "^$"))
        endpoints = partition.get("services", {}).get("ec2", {}).get("endpoints", {})
        regions.update(name for name, endpoint in endpoints.items()
                       if region_name.match(name) and not endpoint.get("deprecated"))
    return regions or None


def known_regions() -> set[str]:
    if botocore is None:
        return set()
    regions = _from_endpoint_data()
    if regions is not None:
        return regions
    from botocore.session import get_session

    session = get_session()
    found: set[str] = set()
    for partition in session.get_available_partitions():
        found.update(session.get_available_regions("ec2", partition_name=partition))
    return found


def unknown_regions(regions: Iterable[str | None]) -> list[str]:
    """The names in `regions` that are not EC2 regions."""
    known = known_regions()
    return [r for r in regions if r and r not in known]
