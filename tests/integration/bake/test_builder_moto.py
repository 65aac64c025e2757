# SPDX-License-Identifier: GPL-3.0-or-later
"""The builder and cleanup roles and the failure path of bake.yml, against a plain moto server."""
from __future__ import annotations

import json
import stat
from pathlib import Path

from bake_helpers import HERE, NOTHING, REPO, Moto, bake_resources, base_vars, run_playbook

SKIP_SSH = ("--skip-tags", "builder_host_keys,builder_inventory")


def _tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def test_builder_makes_tagged_locked_down_resources_and_cleanup_removes_them_twice(
    moto_server: Moto, source_ami: str, tmp_path: Path
) -> None:
    report = tmp_path / "builder.json"
    bake_id = "builder-resources-1"
    run = run_playbook(HERE / "playbooks/builder_resources.yml",
                       base_vars(moto_server, source_ami, bake_id=bake_id, report_path=str(report)), *SKIP_SSH)
    assert run.returncode == 0, run.stdout + run.stderr
    facts = json.loads(report.read_text())
    ec2 = moto_server.client("ec2")

    instance = ec2.describe_instances(InstanceIds=[facts["instance_id"]])["Reservations"][0]["Instances"][0]
    assert instance["ImageId"] == source_ami
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert _tags(instance)["bakery:bake-id"] == bake_id
    assert _tags(instance)["bakery:temporary"] == "true"
    assert instance["KeyName"] == facts["key_name"]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [facts["security_group_id"]]

    group = ec2.describe_security_groups(GroupIds=[facts["security_group_id"]])["SecurityGroups"][0]
    assert _tags(group)["bakery:bake-id"] == bake_id
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]])
            for p in group["IpPermissions"]] == [("tcp", 22, 22, ["127.0.0.1/32"])]

    pair = ec2.describe_key_pairs(KeyNames=[facts["key_name"]])["KeyPairs"][0]
    assert _tags(pair)["bakery:temporary"] == "true"
    private_key = Path(facts["private_key_file"])
    assert stat.S_IMODE(private_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(facts["key_dir"]).stat().st_mode) == 0o700
    assert "PRIVATE KEY" not in run.stdout  # never logged
    assert bake_resources(moto_server, bake_id) != NOTHING

    for attempt in (1, 2):  # twice is harmless
        clean = run_playbook(HERE / "playbooks/cleanup.yml",
                             base_vars(moto_server, source_ami, bake_id=bake_id, cleanup_key_dir=facts["key_dir"]))
        assert clean.returncode == 0, f"cleanup run {attempt}: " + clean.stdout + clean.stderr
        assert bake_resources(moto_server, bake_id) == NOTHING
        assert not Path(facts["key_dir"]).exists()


def test_bake_failing_before_ssh_names_the_step_and_leaves_nothing(moto_server: Moto, source_ami: str) -> None:
    # moto's console output has no host key block: the bake fails at that step, after the
    # key pair, security group and instance were made, and must remove them in the same run.
    bake_id = "fails-at-host-keys"
    run = run_playbook(REPO / "playbooks/bake.yml",
                       base_vars(moto_server, source_ami, bake_id=bake_id, builder_host_keys_timeout=5))
    assert run.returncode != 0
    assert f"Bake {bake_id} failed at step 'host keys'" in run.stdout
    assert "temporary resources were removed" in run.stdout
    assert bake_resources(moto_server, bake_id) == NOTHING
    terminated = moto_server.client("ec2").describe_instances(
        Filters=[{"Name": "tag:bakery:bake-id", "Values": [bake_id]}])["Reservations"]
    assert [i["State"]["Name"] for r in terminated for i in r["Instances"]] == ["terminated"]


def test_cleanup_removes_the_bakes_temporary_role_and_instance_profile(moto_server: Moto, source_ami: str) -> None:
    # What a bake reaching its builder through Session Manager makes: a role with a managed and
    # an inline policy, in an instance profile, both tagged like every temporary resource.
    bake_id = "iam-cleanup-1"
    iam = moto_server.client("iam")
    tags = [{"Key": "bakery:bake-id", "Value": bake_id}, {"Key": "bakery:temporary", "Value": "true"}]
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ssm:UpdateInstanceInformation", "Resource": "*"}]})
    name = f"bakery-{bake_id}"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, Tags=tags)
    policy_arn = iam.create_policy(PolicyName=f"{name}-ssm", PolicyDocument=policy)["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=policy)
    iam.create_instance_profile(InstanceProfileName=name, Tags=tags)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    # another bake's role stays
    iam.create_role(RoleName="bakery-another-bake", AssumeRolePolicyDocument=trust,
                    Tags=[{"Key": "bakery:bake-id", "Value": "another-bake"}, {"Key": "bakery:temporary", "Value": "true"}])

    for attempt in (1, 2):  # twice is harmless
        clean = run_playbook(HERE / "playbooks/cleanup.yml", base_vars(moto_server, source_ami, bake_id=bake_id))
        assert clean.returncode == 0, f"cleanup run {attempt}: " + clean.stdout + clean.stderr
        assert [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("bakery-")] == ["bakery-another-bake"]
        assert [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]] == []
