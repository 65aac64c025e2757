# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The filter unknown_regions: region names EC2 does not have, from botocore's endpoint data.

The same check ami_create, ami_copy and ami_deregister make, with no API call and no module run.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bakery.ami.plugins.module_utils._regions import known_regions


def unknown_regions(regions: Any) -> list[str]:
    if isinstance(regions, str) or not isinstance(regions, (list, tuple)):
        raise AnsibleFilterError(f"unknown_regions takes a list of region names, not {type(regions).__name__}")
    known = known_regions()
    if not known:
        raise AnsibleFilterError("unknown_regions needs boto3 on the controller")
    return [str(r) for r in regions if str(r) not in known]


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"unknown_regions": unknown_regions}
