# SPDX-License-Identifier: GPL-3.0-or-later
"""builder_spot: the builder runs on the spot market, and cleanup leaves no instance or open request."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bake_helpers import HERE, NOTHING, Moto, bake_resources, base_vars, run_playbook

SKIP_SSH = ("--skip-tags", "builder_host_keys,builder_inventory")
LIVE_REQUESTS = [{"Name": "state", "Values": ["open", "active"]}]


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def test_spot_request_asks_one_time_terminate_with_the_max_price() -> None:
    import boto3
    from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
    from botocore.stub import Stubber

    from ansible_collections.bakery.ami.plugins.module_utils._builder_launch import LaunchSettings, run_instance, run_request
    from ansible_collections.bakery.ami.plugins.module_utils._retry import RETRY

    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    client = RetryingBotoClientWrapper(ec2, RETRY)
    tags = {"bakery:bake-id": "x", "bakery:temporary": "true"}
    tag_list = [{"Key": "bakery:bake-id", "Value": "x"}, {"Key": "bakery:temporary", "Value": "true"},
                {"Key": "Name", "Value": "bakery-builder-x"}]
    base = {"ImageId": "ami-12345678", "InstanceType": "t3.micro", "KeyName": "bakery-x", "MinCount": 1, "MaxCount": 1,
            "SecurityGroupIds": ["sg-12345678"], "ClientToken": "bakery-x",
            "MetadataOptions": {"HttpEndpoint": "enabled", "HttpTokens": "required"},
            "TagSpecifications": [{"ResourceType": kind, "Tags": tag_list}
                                  for kind in ("instance", "volume", "spot-instances-request")]}
    capped = LaunchSettings(bake_id="x", tags=tags, instance_type="t3.micro", ssh_cidr="127.0.0.1/32",
                            spot=True, spot_max_price="0.05")
    uncapped = LaunchSettings(bake_id="x", tags=tags, instance_type="t3.micro", ssh_cidr="127.0.0.1/32", spot=True)
    with Stubber(ec2) as stub:
        stub.add_response("run_instances", {"Instances": [{"InstanceId": "i-0123456789abcdef0"}]}, {
            **base, "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {
                "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate", "MaxPrice": "0.05"}},
        })
        stub.add_response("run_instances", {"Instances": [{"InstanceId": "i-0123456789abcdef1"}]}, {
            **base, "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {
                "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}},
        })
        first = run_instance(client, run_request(capped, "ami-12345678", "bakery-x", "sg-12345678"))
        assert first["InstanceId"] == "i-0123456789abcdef0"
        # no cap: the on-demand price
        second = run_instance(client, run_request(uncapped, "ami-12345678", "bakery-x", "sg-12345678"))
        assert second["InstanceId"] == "i-0123456789abcdef1"
        stub.assert_no_pending_responses()


def test_spot_builder_is_a_tagged_spot_instance_and_cleanup_leaves_nothing(
    moto_server: Moto, source_ami: str, tmp_path: Path
) -> None:
    report = tmp_path / "builder.json"
    bake_id = "spot-builder-1"
    spot = {"builder_spot": True, "builder_spot_max_price": "0.05"}
    run = run_playbook(HERE / "playbooks/builder_resources.yml",
                       base_vars(moto_server, source_ami, bake_id=bake_id, report_path=str(report), **spot), *SKIP_SSH)
    assert run.returncode == 0, run.stdout + run.stderr
    facts = json.loads(report.read_text())
    ec2 = moto_server.client("ec2")
    instance = ec2.describe_instances(InstanceIds=[facts["instance_id"]])["Reservations"][0]["Instances"][0]
    assert instance["InstanceLifecycle"] == "spot"
    assert instance["State"]["Name"] == "running"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert _tags(instance)["bakery:bake-id"] == bake_id
    assert _tags(instance)["bakery:temporary"] == "true"
    assert _tags(instance)["Name"] == f"bakery-builder-{bake_id}"
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [facts["security_group_id"]]
    assert instance["KeyName"] == facts["key_name"]

    # a spot request of the bake still open (as EC2 keeps one while it has no instance) is cancelled too
    tag = [{"Name": "tag:bakery:bake-id", "Values": [bake_id]}]
    ec2.request_spot_instances(
        InstanceCount=1, Type="one-time",
        LaunchSpecification={"ImageId": source_ami, "InstanceType": "t3.micro"},
        TagSpecifications=[{"ResourceType": "spot-instances-request",
                            "Tags": [{"Key": "bakery:bake-id", "Value": bake_id}]}],
    )
    assert ec2.describe_spot_instance_requests(Filters=tag + LIVE_REQUESTS)["SpotInstanceRequests"]

    # (that a second cleanup is harmless is test_builder_moto's)
    clean = run_playbook(HERE / "playbooks/cleanup.yml",
                         base_vars(moto_server, source_ami, bake_id=bake_id, cleanup_key_dir=facts["key_dir"], **spot))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert bake_resources(moto_server, bake_id) == NOTHING
    assert ec2.describe_spot_instance_requests(Filters=tag + LIVE_REQUESTS)["SpotInstanceRequests"] == []
    assert not Path(facts["key_dir"]).exists()
