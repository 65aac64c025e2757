# SPDX-License-Identifier: GPL-3.0-or-later
"""A Galaxy consumer's view: the collection built into a tarball, installed somewhere else, and
all three AMI modules run by FQCN from a playbook outside the repo, configured only through
`module_defaults: group/bakery.ami.aws`, against a moto server on loopback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SOURCE_REGION = "us-east-1"
COPY_REGIONS = ["us-west-2", "eu-west-1"]

PLAYBOOK = """---
- name: A consumer bakes, copies and retires an image with bakery.ami
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/bakery.ami.aws:
      endpoint_url: "{{ endpoint }}"
      access_key: testing
      secret_key: testing
      region: us-east-1
  tasks:
    - name: Image the instance
      bakery.ami.ami_create:
        instance_id: "{{ instance_id }}"
        name: consumer-base-1
        tags:
          app: consumer
      register: created

    - name: Copy it to two regions
      bakery.ami.ami_copy:
        source_image_id: "{{ created.image_id }}"
        regions: [us-west-2, eu-west-1]
        copy_tags: true
        tags:
          copied: "yes"
      register: copied

    - name: Copy again (reuses the copies)
      bakery.ami.ami_copy:
        source_image_id: "{{ created.image_id }}"
        regions: [us-west-2, eu-west-1]
        copy_tags: true
        tags:
          copied: "yes"
      register: copied_again

    - name: The group reaches amazon.aws modules too
      amazon.aws.ec2_ami_info:
        region: us-west-2
        image_ids: ["{{ copied.image_ids['us-west-2'] }}"]
      register: info

    - name: Deregister the image and its copies
      bakery.ami.ami_deregister:
        image_ids: "{{ [created.image_id] + (copied.image_ids.values() | list) }}"
        regions: [us-east-1, us-west-2, eu-west-1]
      register: gone

    - name: Hand the results to the test
      ansible.builtin.copy:
        content: "{{ {'created': created, 'copied': copied, 'copied_again': copied_again, 'info': info, 'gone': gone} | to_json }}"
        dest: "{{ results_file }}"
        mode: "0600"
"""


@pytest.fixture
def installed_collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collection as a consumer gets it: built into a tarball, installed into its own path."""
    dist = tmp_path_factory.mktemp("dist")
    collections = tmp_path_factory.mktemp("consumer-collections")
    # A config of its own: the checkout's ansible.cfg (which `make` exports) would make
    # ansible-galaxy see bakery.ami as installed already and skip the install.
    (dist / "ansible.cfg").write_text("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(dist / "ansible.cfg")
    run([BIN / "ansible-galaxy", "collection", "build", "--output-path", dist, REPO], cwd=dist, env=env)
    [tarball] = dist.glob("bakery-ami-*.tar.gz")
    run([BIN / "ansible-galaxy", "collection", "install", "--no-deps", "-p", collections, tarball], cwd=dist, env=env)
    assert (collections / "ansible_collections" / "bakery" / "ami" / "plugins" / "modules" / "ami_copy.py").is_file()
    return collections


def run(cmd: list[Any], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def consumer_env(project: Path, collections: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_", "EC2_")) and k != "PYTHONPATH"}
    env.update(
        {
            "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(collections),
            # Never the user's AWS files; the playbook's module_defaults carry everything.
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
    )
    return env


def test_consumer_playbook_runs_all_three_modules_from_the_installed_tarball(
    moto_endpoint: str, installed_collection: Path, tmp_path: Path
) -> None:
    project = tmp_path / "consumer"
    project.mkdir()
    assert REPO not in project.parents
    (project / "ansible.cfg").write_text(f"[defaults]\ncollections_path = {installed_collection}\nretry_files_enabled = false\n")
    (project / "hosts.ini").write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    (project / "site.yml").write_text(PLAYBOOK)
    env = consumer_env(project, installed_collection)

    listed = json.loads(run([BIN / "ansible-galaxy", "collection", "list", "bakery.ami", "--format", "json"], cwd=project, env=env))
    assert list(listed) == [str(installed_collection / "ansible_collections")], listed

    ec2 = boto3.client("ec2", region_name=SOURCE_REGION, endpoint_url=moto_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
    base = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"][0]
    instance_id = ec2.run_instances(ImageId=base["ImageId"], MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    results_file = tmp_path / "results.json"
    extra = json.dumps({"endpoint": moto_endpoint, "instance_id": instance_id, "results_file": str(results_file)})

    run([BIN / "ansible-playbook", "-i", "hosts.ini", "site.yml", "-e", extra], cwd=project, env=env)

    results = json.loads(results_file.read_text())
    created, copied, again, info, gone = (results[k] for k in ("created", "copied", "copied_again", "info", "gone"))
    image_id = created["image_id"]
    assert created["changed"] and image_id.startswith("ami-")
    assert copied["changed"] and sorted(copied["image_ids"]) == sorted(COPY_REGIONS)
    assert again["changed"] is False and again["image_ids"] == copied["image_ids"]
    assert copied["images"]["us-west-2"]["tags"]["app"] == "consumer"
    [seen] = info["images"]
    assert seen["image_id"] == copied["image_ids"]["us-west-2"] and seen["tags"]["copied"] == "yes"

    expected = {SOURCE_REGION: [image_id], **{r: [copied["image_ids"][r]] for r in COPY_REGIONS}}
    assert {r: ids for r, ids in gone["deregistered"].items() if ids} == expected
    for region, ids in expected.items():
        backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
        # Made in that region by the playbook, and gone again with its snapshots.
        assert ids[0] in backend.deleted_amis
        assert ids[0] not in backend.amis
        snapshots = created["image"]["snapshot_ids"] if region == SOURCE_REGION else copied["images"][region]["snapshot_ids"]
        assert snapshots and not set(snapshots) & set(backend.snapshots)
