#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright: contributors to bakery.ami
from __future__ import annotations

DOCUMENTATION = r"""
---
module: builder_resources
short_description: Launch, stop and remove the temporary builder of one bake
version_added: 0.2.0
description:
  - The bake's temporary resources in one task each way, with as few EC2 calls as each step allows.
    The roles M(bakery.ami.builder), M(bakery.ami.image) and M(bakery.ami.cleanup) use it; it can be used on its own.
  - O(state=present) finds the source image, makes an ed25519 key pair (the private key in a private directory,
    never returned) and imports its public half, creates a security group that lets in SSH from O(ssh_cidr)
    only, runs the instance with IMDSv2 required, waits until it runs and reads its SSH host keys from
    the console output. Everything it creates is tagged with O(bake_id) and C(bakery:temporary) in the create call.
  - O(state=stopped) stops O(instance_ids) and waits until they are stopped.
  - A second O(state=present) of the same O(bake_id) that finds the bake's builder running, with its key pair,
    its security group and its private key in O(key_dir), returns that builder and reports no change instead of
    launching another.
  - O(state=absent) is the one remover of temporary resources, used by the M(bakery.ami.cleanup) role after a bake
    and by the sweep playbook after killed ones. It cancels spot requests, terminates instances, deletes key pairs,
    security groups, IAM instance profiles and roles, and removes O(key_dir). It acts on the ids and names given and,
    with O(find=true), on what it finds. Safe to run twice.
  - With O(find=true) and no O(older_than_minutes), it finds everything tagged with O(bake_id). With
    O(older_than_minutes), it finds everything tagged C(bakery:temporary=true) (and, with O(bake_id), of that bake)
    made more than that many minutes ago; instances by their launch time, spot requests and key pairs by their
    creation time, security groups by their C(bakery:created-at) tag (a group without one is kept), roles and
    instance profiles by their creation date.
  - IAM lists roles and instance profiles without their tags, so only those named C(bakery-*), the names a bake
    gives its temporary resources, have their tags read. When the credentials may not list IAM roles, the search
    for them is skipped with a warning.
  - When O(state=present) fails, the result's C(bake_step) names the step (C(source lookup), C(key pair),
    C(security group), C(launch) or C(host keys)). What was created stays, tagged, for O(state=absent)
    with O(find=true); the key directory is removed at once.
author:
  - bakery.ami contributors (!UNKNOWN)
options:
  state:
    description: What to do with the builder.
    type: str
    choices: [present, stopped, absent]
    default: present
  bake_id:
    description:
      - The bake the resources belong to; names them and is their C(bakery:bake-id) tag.
      - Required with O(state=present) and O(state=stopped). With O(state=absent) and O(find=true), it or
        O(older_than_minutes) is required.
    type: str
  tags:
    description:
      - More tags for every resource O(state=present) creates. The bake tags are always added.
    type: dict
    default: {}
  source_image_id:
    description:
      - The image to launch. With O(state=present), exactly one of O(source_image_id), O(source_ssm_parameter)
        and O(source_filters) is needed.
    type: str
    default: ""
  source_ssm_parameter:
    description:
      - An SSM parameter holding the id of the image to launch, such as
        C(/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64).
    type: str
    default: ""
  source_filters:
    description: DescribeImages filters choosing the image to launch, such as C(name) with value C(al2023-ami-*).
    type: dict
    default: {}
  source_owners:
    description: Whose images O(source_filters) looks among, such as C(amazon) or an account id.
    type: list
    elements: str
    default: []
  source_most_recent:
    description: When several images match O(source_filters), take the newest instead of failing.
    type: bool
    default: true
  instance_type:
    description: The builder's instance type.
    type: str
    default: t3.micro
  ssh_cidr:
    description: The only address range the security group lets in on tcp/22, such as C(198.51.100.7/32).
    type: str
    default: ""
  vpc_id:
    description: The VPC of the security group. By default the subnet's, or the default VPC.
    type: str
    default: ""
  subnet_id:
    description: The subnet to launch in. By default EC2 picks one of the default VPC.
    type: str
    default: ""
  assign_public_ip:
    description: Give the builder a public address (only with O(subnet_id)).
    type: bool
    default: false
  address:
    description: Which of the builder's addresses the result's C(address) is.
    type: str
    choices: [private, public]
    default: private
  instance_profile:
    description: An IAM instance profile for the builder, by name or ARN.
    type: str
    default: ""
  user_data:
    description: User data for the builder, as text.
    type: str
    default: ""
  root_volume:
    description:
      - The builder's root volume, when it should differ from the image's. It is deleted with the instance.
    type: dict
    default: {}
    suboptions:
      size:
        description: Size in GiB; V(0) keeps the image's.
        type: int
        default: 0
      type:
        description: The volume type.
        type: str
        default: gp3
      encrypted:
        description: Encrypt the volume.
        type: bool
        default: false
      kms_key_id:
        description: The KMS key to encrypt it with; by default the account's EBS key.
        type: str
        default: ""
  spot:
    description: Run the builder as a one-time spot instance, terminated if interrupted.
    type: bool
    default: false
  spot_max_price:
    description: The most to pay an hour for the spot builder. By default the on-demand price.
    type: str
    default: ""
  key_dir:
    description:
      - With O(state=present), the directory for the private key (made 0700); by default a new private temporary directory.
      - With O(state=absent), the directory to remove.
    type: path
    default: ""
  wait_host_keys:
    description: Read the SSH host keys from the console output once the builder runs.
    type: bool
    default: true
  host_keys_timeout:
    description: How long to wait for the host key block on the console, in seconds.
    type: int
    default: 300
  instance_ids:
    description: With O(state=stopped) the instances to stop; with O(state=absent) instances to terminate.
    type: list
    elements: str
    default: []
  security_group_ids:
    description: With O(state=absent), security groups to delete.
    type: list
    elements: str
    default: []
  key_names:
    description: With O(state=absent), key pairs to delete (those that do not exist are skipped).
    type: list
    elements: str
    default: []
  instance_profile_names:
    description: With O(state=absent), IAM instance profiles to delete (their roles are taken out of them first).
    type: list
    elements: str
    default: []
  role_names:
    description:
      - With O(state=absent), IAM roles to delete. They are taken out of their instance profiles, their managed
        policies are detached and their inline policies deleted first.
    type: list
    elements: str
    default: []
  find:
    description:
      - With O(state=absent), also remove what is found by O(bake_id) or by O(older_than_minutes) (see above).
      - With neither of them the module fails rather than remove every bake's temporary resources.
    type: bool
    default: true
  older_than_minutes:
    description:
      - With O(state=absent) and O(find=true), find the resources tagged C(bakery:temporary=true) made more than this
        many minutes ago (with O(bake_id), of that bake only), as a sweep after killed bakes does.
      - V(0) sets no age limit; O(bake_id) then selects.
    type: int
    default: 0
  spot_requests:
    description: With O(state=absent) and O(find=true), also cancel the open and active spot requests found.
    type: bool
    default: true
  wait:
    description:
      - With O(state=absent), delete the security groups once EC2 lets them go (an instance holds its groups until it
        has ended, and EC2 answers DependencyViolation until then), then wait until the instances are terminated.
        Without it the instances are left to end on their own and, when there are any, the security groups are kept
        (a later run deletes them).
    type: bool
    default: true
  wait_timeout:
    description: How long each wait may take, in seconds.
    type: int
    default: 600
attributes:
  check_mode:
    support: full
    details:
      - With O(state=present), looks the source image and an existing builder of the bake up, and launches nothing.
      - With O(state=absent), finds what would be removed and reports it in the same keys, and removes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - A second O(state=present) returns the builder the first one launched (with the same O(key_dir)).
      - A second O(state=stopped) or O(state=absent) finds nothing left to do.
extends_documentation_fragment:
  - bakery.ami._attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Launch a builder reachable from this runner only
  bakery.ami.builder_resources:
    bake_id: web-20270101
    source_image_id: ami-0123456789abcdef0
    ssh_cidr: 198.51.100.7/32
    region: eu-west-1
  register: builder

- name: Stop it before imaging
  bakery.ami.builder_resources:
    state: stopped
    bake_id: web-20270101
    instance_ids: ["{{ builder.instance_id }}"]
    region: eu-west-1

- name: Remove everything of the bake
  bakery.ami.builder_resources:
    state: absent
    bake_id: web-20270101
    key_dir: "{{ builder.key_dir }}"
    region: eu-west-1

- name: Sweep what bakes killed more than an hour ago left behind
  bakery.ami.builder_resources:
    state: absent
    older_than_minutes: 60
    region: eu-west-1
  register: swept
"""

RETURN = r"""
bake_step:
  description: The step that failed (only when the module failed).
  returned: failure
  type: str
  sample: security group
source_image:
  description: The image launched (C(image_id), C(name), C(creation_date), C(root_device_name)).
  returned: state=present
  type: dict
instance_id:
  description: The builder instance.
  returned: state=present, unless in check mode with no builder yet
  type: str
  sample: i-0123456789abcdef0
address:
  description: The builder's address chosen by O(address).
  returned: state=present, unless in check mode with no builder yet
  type: str
security_group_id:
  description: The security group made for the builder.
  returned: state=present, unless in check mode with no builder yet
  type: str
key_name:
  description: The key pair imported for the builder.
  returned: state=present, unless in check mode with no builder yet
  type: str
key_dir:
  description: The private directory holding the key.
  returned: state=present, unless in check mode with no builder yet
  type: str
private_key_file:
  description: The private key file (mode 0600).
  returned: state=present, unless in check mode with no builder yet
  type: str
public_key:
  description: The public key line.
  returned: state=present, unless in check mode with no builder yet
  type: str
host_keys:
  description:
    - The builder's SSH host keys from its console output, C(type base64) each.
    - Empty with O(wait_host_keys=false).
  returned: state=present, unless in check mode with no builder yet
  type: list
  elements: str
spot_request_id:
  description: The spot request of a spot builder.
  returned: state=present with a spot builder, unless in check mode with no builder yet
  type: str
terminated:
  description: Instances this run terminated (in check mode, would terminate).
  returned: state=absent
  type: list
  elements: str
deleted_security_groups:
  description: Security groups deleted.
  returned: state=absent
  type: list
  elements: str
deleted_key_pairs:
  description: Key pairs deleted.
  returned: state=absent
  type: list
  elements: str
cancelled_spot_requests:
  description: Spot requests cancelled.
  returned: state=absent
  type: list
  elements: str
deleted_instance_profiles:
  description: IAM instance profiles deleted.
  returned: state=absent
  type: list
  elements: str
deleted_roles:
  description: IAM roles deleted.
  returned: state=absent
  type: list
  elements: str
removed_key_dir:
  description: Whether O(key_dir) existed and was removed.
  returned: state=absent
  type: bool
"""

import ipaddress
import shutil
from datetime import datetime, timezone
from typing import Any

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.bakery.ami.plugins.module_utils import _builder_find as find
from ansible_collections.bakery.ami.plugins.module_utils import _builder_launch as launch
from ansible_collections.bakery.ami.plugins.module_utils._bake_tags import bake_tags
from ansible_collections.bakery.ami.plugins.module_utils._builder_release import (
    Release,
    find_selected,
    find_selected_iam,
    remove,
)
from ansible_collections.bakery.ami.plugins.module_utils._client import aws_client
from ansible_collections.bakery.ami.plugins.module_utils._retry import AWS_ERRORS, aws_error_message


def argument_spec() -> dict[str, Any]:
    text = {"type": "str", "default": ""}
    names = {"type": "list", "elements": "str", "default": []}
    return {
        "state": {"type": "str", "choices": ["present", "stopped", "absent"], "default": "present"},
        "bake_id": {"type": "str"},
        "tags": {"type": "dict", "default": {}},
        "source_image_id": text,
        "source_ssm_parameter": text,
        "source_filters": {"type": "dict", "default": {}},
        "source_owners": names,
        "source_most_recent": {"type": "bool", "default": True},
        "instance_type": {"type": "str", "default": "t3.micro"},
        "ssh_cidr": text,
        "vpc_id": text,
        "subnet_id": text,
        "assign_public_ip": {"type": "bool", "default": False},
        "address": {"type": "str", "choices": ["private", "public"], "default": "private"},
        "instance_profile": text,
        "user_data": text,
        "root_volume": {"type": "dict", "default": {}, "options": {
            "size": {"type": "int", "default": 0},
            "type": {"type": "str", "default": "gp3"},
            "encrypted": {"type": "bool", "default": False},
            "kms_key_id": {"type": "str", "default": ""},
        }},
        "spot": {"type": "bool", "default": False},
        "spot_max_price": text,
        "key_dir": {"type": "path", "default": ""},
        "wait_host_keys": {"type": "bool", "default": True},
        "host_keys_timeout": {"type": "int", "default": 300},
        "instance_ids": names,
        "security_group_ids": names,
        # key pair names, not key material
        "key_names": {**names, "no_log": False},
        "instance_profile_names": names,
        "role_names": names,
        "find": {"type": "bool", "default": True},
        "older_than_minutes": {"type": "int", "default": 0},
        "spot_requests": {"type": "bool", "default": True},
        "wait": {"type": "bool", "default": True},
        "wait_timeout": {"type": "int", "default": 600},
    }


REQUIRED_IF = [("state", "present", ["bake_id"]), ("state", "stopped", ["bake_id"])]


class Builder:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.params = module.params
        self.region = module.region
        self.client: Any = None
        self.step = "validate"
        self.key_dir = ""

    def fail(self, msg: str) -> None:
        # the private key is of no use once the launch failed
        if self.key_dir and not self.params["key_dir"]:
            shutil.rmtree(self.key_dir, ignore_errors=True)
        self.module.fail_json(msg=msg.rstrip(".") + ".", bake_step=self.step)

    def check_input(self) -> None:
        params = self.params
        if params["state"] == "present":
            ways = [bool(params["source_image_id"]), bool(params["source_ssm_parameter"]), bool(params["source_filters"])]
            if sum(ways) != 1:
                self.fail("Give exactly one of source_image_id, source_ssm_parameter and source_filters for state=present")
            try:
                ipaddress.ip_network(params["ssh_cidr"], strict=False)
            except ValueError:
                self.fail(f"ssh_cidr {params['ssh_cidr']!r} is not an address range such as 198.51.100.7/32")
        elif params["state"] == "stopped" and not params["instance_ids"]:
            self.fail("state=stopped needs instance_ids")
        elif params["state"] == "absent" and params["find"] and not params["bake_id"] and params["older_than_minutes"] <= 0:
            self.fail("find=true with neither bake_id nor older_than_minutes would remove the temporary resources of"
                      " every bake; give bake_id, older_than_minutes or both (or find=false to remove only what is named)")
        if params["wait_timeout"] < 0 or params["host_keys_timeout"] < 0 or params["older_than_minutes"] < 0:
            self.fail("wait_timeout, host_keys_timeout and older_than_minutes must be 0 or more")

    def settings(self, root_device_name: str) -> launch.LaunchSettings:
        p = self.params
        # created-at dates the security group for a sweep (EC2 records no creation time for groups)
        tags = {**p["tags"], **bake_tags(p["bake_id"], created_at=datetime.now(timezone.utc))}
        return launch.LaunchSettings(
            bake_id=p["bake_id"], tags=tags, instance_type=p["instance_type"],
            ssh_cidr=p["ssh_cidr"], vpc_id=p["vpc_id"], subnet_id=p["subnet_id"],
            assign_public_ip=p["assign_public_ip"], instance_profile=p["instance_profile"], user_data=p["user_data"],
            spot=p["spot"], spot_max_price=p["spot_max_price"],
            volumes=launch.root_volume_mapping(root_device_name, p["root_volume"] or {}),
        )

    def source(self, image_id: str) -> dict[str, Any]:
        p = self.params
        filters = {} if image_id else p["source_filters"]
        if not image_id and p["source_ssm_parameter"]:
            image_id = launch.image_id_from_parameter(aws_client(self.module, "ssm"), p["source_ssm_parameter"])
        image = launch.source_image(self.client, self.region, image_id, filters, p["source_owners"], p["source_most_recent"])
        return {
            "image_id": image["ImageId"], "name": image.get("Name", ""),
            "creation_date": image.get("CreationDate", ""), "root_device_name": image.get("RootDeviceName", "/dev/xvda"),
        }

    def builder_result(self, instance: dict[str, Any], group_id: str, key_name: str, key_dir: str,
                       private_file: str, public_line: str) -> dict[str, Any]:
        p = self.params
        instance_id = instance["InstanceId"]
        address = instance.get("PublicIpAddress" if p["address"] == "public" else "PrivateIpAddress") or ""
        if not address:
            raise launch.StepError(
                "launch", f"Instance {instance_id} has no {p['address']} address; check address and assign_public_ip"
            )
        result: dict[str, Any] = {
            "instance_id": instance_id, "address": address, "security_group_id": group_id, "key_name": key_name,
            "key_dir": key_dir, "private_key_file": private_file, "public_key": public_line, "host_keys": [],
        }
        if instance.get("SpotInstanceRequestId"):
            result["spot_request_id"] = instance["SpotInstanceRequestId"]
        if p["wait_host_keys"]:
            self.step = "host keys"
            result["host_keys"] = launch.read_host_keys(self.client, instance_id, p["host_keys_timeout"])
        return result

    def present(self) -> dict[str, Any]:
        """Plan (is the bake's builder there already? which image?), then launch what is missing."""
        p = self.params
        # nothing is made before the launch: a failure to look is one of the first step
        self.step = "source lookup"
        existing = launch.existing_builder(self.client, p["bake_id"], find.INSTANCE_STATES_TO_TERMINATE, p["key_dir"])
        result: dict[str, Any] = {
            "changed": existing is None,
            "source_image": self.source(existing.instance["ImageId"] if existing else p["source_image_id"]),
        }
        if existing is not None:
            self.step = "launch"
            instance = existing.instance
            if instance.get("State", {}).get("Name") != "running":
                instance = launch.wait_running(self.client, instance["InstanceId"], p["wait_timeout"])
            result.update(self.builder_result(instance, existing.group_id, existing.key_name, p["key_dir"],
                                              existing.private_key_file, existing.public_line))
            return result
        if self.module.check_mode:
            return result
        settings = self.settings(result["source_image"]["root_device_name"])
        self.step = "key pair"
        self.key_dir, private_file, public_line = launch.write_key_pair(p["key_dir"], p["bake_id"])
        key_name = settings.resource_name
        launch.import_key_pair(self.client, key_name, public_line, settings.tags)
        self.step = "security group"
        group_id = launch.create_security_group(self.client, settings)
        self.step = "launch"
        started = launch.run_instance(self.client, launch.run_request(settings, result["source_image"]["image_id"],
                                                                      key_name, group_id))
        instance = launch.wait_running(self.client, started["InstanceId"], p["wait_timeout"])
        if started.get("SpotInstanceRequestId"):
            instance.setdefault("SpotInstanceRequestId", started["SpotInstanceRequestId"])
        result.update(self.builder_result(instance, group_id, key_name, self.key_dir, private_file, public_line))
        return result

    def stopped(self) -> dict[str, Any]:
        """Plan (which of the instances are not stopped yet), then stop those."""
        self.step = "stop"
        ids = self.params["instance_ids"]
        states = launch.instance_states(self.client, ids)
        to_stop = [instance_id for instance_id in ids if states.get(instance_id) != "stopped"]
        if not self.module.check_mode:
            for instance_id in to_stop:
                launch.stop(self.client, instance_id, self.params["wait_timeout"])
        return {"changed": bool(to_stop)}

    def absent(self) -> dict[str, Any]:
        """Plan (the ids given and what the selector finds), then remove it, or in check mode report it."""
        p = self.params
        self.step = "cleanup"
        release = Release(instance_ids=list(p["instance_ids"]), security_group_ids=list(p["security_group_ids"]),
                          key_names=find.key_pairs_named(self.client, p["key_names"]),
                          instance_profile_names=list(p["instance_profile_names"]), role_names=list(p["role_names"]))
        iam: Any | None = None
        if p["find"]:
            selector = find.Selector(bake_id=p["bake_id"] or "", older_than_minutes=p["older_than_minutes"])
            find_selected(self.client, selector, release, p["spot_requests"])
            iam = aws_client(self.module, "iam")
            warning = find_selected_iam(iam, selector, release)
            if warning:
                self.module.warn(warning)
        if release.needs_iam and iam is None:
            iam = aws_client(self.module, "iam")
        if self.module.check_mode:
            release.plan(self.client, iam, p["key_dir"])
        else:
            remove(self.client, release, iam=iam, wait=p["wait"], timeout=p["wait_timeout"], key_dir=p["key_dir"])
        return release.result()

    def run(self) -> dict[str, Any]:
        self.check_input()
        self.client = aws_client(self.module)
        return {"present": self.present, "stopped": self.stopped, "absent": self.absent}[self.params["state"]]()


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), required_if=REQUIRED_IF, supports_check_mode=True)
    builder = Builder(module)
    try:
        module.exit_json(**builder.run())
    except launch.StepError as e:
        builder.step = e.step
        builder.fail(str(e))
    except AWS_ERRORS as e:
        of_bake = f" of bake {module.params['bake_id']}" if module.params["bake_id"] else ""
        builder.fail(f"The {builder.step} step{of_bake} failed: {aws_error_message(e)}")


if __name__ == "__main__":
    main()
