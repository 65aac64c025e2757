# SPDX-License-Identifier: GPL-3.0-or-later
"""The unknown_regions filter: botocore's endpoint data, no API call."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bakery.ami.plugins.filter.unknown_regions import FilterModule, unknown_regions


def test_known_regions_of_every_partition_pass_and_unknown_ones_come_back_in_order() -> None:
    names = ["us-east-1", "mars-north-1", "cn-north-1", "us-gov-west-1", "eu-wset-2"]
    assert unknown_regions(names) == ["mars-north-1", "eu-wset-2"]
    assert FilterModule().filters()["unknown_regions"] is unknown_regions


@pytest.mark.parametrize("value", ["us-east-1", None, {"us-east-1": 1}])
def test_a_list_is_required(value: object) -> None:
    with pytest.raises(AnsibleFilterError, match="takes a list of region names"):
        unknown_regions(value)


def test_the_endpoint_data_read_gives_what_botocore_resolves() -> None:
    import botocore.session

    from ansible_collections.bakery.ami.plugins.module_utils import _regions

    session = botocore.session.get_session()
    resolved = {r for p in session.get_available_partitions() for r in session.get_available_regions("ec2", partition_name=p)}
    assert _regions._from_endpoint_data() == resolved
