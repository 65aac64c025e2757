# SPDX-License-Identifier: GPL-3.0-or-later
"""Region names checked against botocore's endpoint data, with no API call."""
from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from ansible_collections.bakery.ami.plugins.module_utils import _regions
from ansible_collections.bakery.ami.plugins.module_utils._regions import known_regions, unknown_regions


def test_unknown_regions_in_order_and_empty_names_skipped() -> None:
    assert unknown_regions(["us-east-1", "eu-wset-2", None, "", "cn-north-1", "mars-1"]) == ["eu-wset-2", "mars-1"]


def test_known_regions_cover_every_partition() -> None:
    assert {"us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"} <= known_regions()


def fake_botocore(tmp_path: Path, endpoints: object) -> types.SimpleNamespace:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "endpoints.json").write_text(json.dumps(endpoints) if not isinstance(endpoints, str) else endpoints)
    return types.SimpleNamespace(__file__=str(tmp_path / "__init__.py"))


def test_endpoint_data_keeps_ec2_regions_of_each_partition_and_drops_deprecated_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoints = {
        "partitions": [
            {
                "regionRegex": "^(us|eu)\\-\\w+\\-\\d+$",
                "services": {
                    "ec2": {"endpoints": {"us-east-1": {}, "eu-west-1": {}, "fips-us-east-1": {}, "us-west-9": {"deprecated": True}}},
                },
            },
            {"regionRegex": "^cn\\-\\w+\\-\\d+$", "services": {"ec2": {"endpoints": {"cn-north-1": {}}}}},
        ]
    }
    monkeypatch.setattr(_regions, "botocore", fake_botocore(tmp_path, endpoints))
    assert _regions._from_endpoint_data() == {"us-east-1", "eu-west-1", "cn-north-1"}


def test_unreadable_endpoint_data_falls_back_to_botocores_resolver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _regions.botocore
    monkeypatch.setattr(_regions, "botocore", fake_botocore(tmp_path, "{not json"))
    assert _regions._from_endpoint_data() is None
    monkeypatch.setattr(_regions, "botocore", real)
    monkeypatch.setattr(_regions, "_from_endpoint_data", lambda: None)
    assert "us-east-1" in known_regions() and "eu-wset-2" not in known_regions()


def test_without_botocore_no_region_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_regions, "botocore", None)
    assert known_regions() == set()
    assert unknown_regions(["us-east-1"]) == ["us-east-1"]
