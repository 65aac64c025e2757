# SPDX-License-Identifier: GPL-3.0-or-later
"""The one client factory: clients from the module's AWS options, in the asked regions, with the retry policy."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from ansible_collections.bakery.ami.plugins.module_utils._client import aws_client, aws_clients


def make_module(**args: Any) -> AnsibleAWSModule:
    with patch_module_args(args):
        return AnsibleAWSModule(argument_spec={})


@pytest.fixture
def mocked(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    with mock_aws():
        yield


def test_aws_client_in_the_modules_region_or_another(mocked: None) -> None:
    module = make_module(region="eu-west-1")
    assert aws_client(module).meta.region_name == "eu-west-1"
    assert aws_client(module, "ec2", "ap-southeast-2").meta.region_name == "ap-southeast-2"
    assert aws_client(module, "kms").meta.service_model.service_name == "kms"


def test_aws_clients_one_per_region_answering(mocked: None) -> None:
    clients = aws_clients(make_module(region="us-east-1"), "ec2", ["us-east-1", "eu-west-1"])
    assert {region: c.meta.region_name for region, c in clients.items()} == {"us-east-1": "us-east-1", "eu-west-1": "eu-west-1"}
    for client in clients.values():
        assert client.describe_images(Owners=["self"], aws_retry=True)["Images"] == []
    assert aws_clients(make_module(region="us-east-1"), "ec2", []) == {}


def test_aws_clients_take_the_modules_endpoint(aws_env: None) -> None:
    clients = aws_clients(make_module(region="us-east-1", endpoint_url="http://127.0.0.1:4566"), "ec2", ["us-east-1"])
    assert clients["us-east-1"].meta.endpoint_url == "http://127.0.0.1:4566"


@pytest.mark.parametrize("make", [aws_client, lambda m: aws_clients(m, "ec2", ["us-east-1"])["us-east-1"]])
def test_calls_with_aws_retry_are_retried_on_throttling(mocked: None, make: Any) -> None:
    client = make(make_module(region="us-east-1"))
    stubber = Stubber(client.client)
    stubber.add_client_error("describe_regions", "RequestLimitExceeded")
    stubber.add_response("describe_regions", {"Regions": [{"RegionName": "us-east-1"}]})
    stubber.add_client_error("describe_regions", "RequestLimitExceeded")
    with stubber:
        assert client.describe_regions(aws_retry=True)["Regions"] == [{"RegionName": "us-east-1"}]
        # Without aws_retry the error reaches the caller at once.
        with pytest.raises(ClientError, match="RequestLimitExceeded"):
            client.describe_regions()
