# SPDX-License-Identifier: GPL-3.0-or-later
"""ami_create and ami_deregister as a playbook user meets them: ansible-playbook from the checkout,
check mode and diff mode through the callback, against a moto server on loopback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

PLAYBOOK = """---
- name: Image, retag and retire an image
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/bakery.ami.aws:
      endpoint_url: "{{ endpoint }}"
      access_key: testing
      secret_key: testing
      region: us-east-1
  tasks:
    - name: Plan the image
      bakery.ami.ami_create:
        instance_id: "{{ instance_id }}"
        name: play-web-1
        tags: {role: web}
      check_mode: true
      register: planned

    - name: Make the image
      bakery.ami.ami_create:
        instance_id: "{{ instance_id }}"
        name: play-web-1
        tags: {role: web}
      register: created

    - name: Make it again
      bakery.ami.ami_create:
        instance_id: "{{ instance_id }}"
        name: play-web-1
        tags: {role: web}
      register: again

    - name: Retag it, with a diff
      bakery.ami.ami_create:
        instance_id: "{{ instance_id }}"
        name: play-web-1
        tags: {role: database}
      diff: true
      register: retagged

    - name: Plan the retirement
      bakery.ami.ami_deregister:
        name: play-web-*
      check_mode: true
      register: retire_plan

    - name: Retire it
      bakery.ami.ami_deregister:
        name: play-web-*
      register: retired

    - name: Retire it again
      bakery.ami.ami_deregister:
        name: play-web-*
      register: retired_again

    - name: Hand the results to the test
      ansible.builtin.copy:
        content: "{{ {'planned': planned, 'created': created, 'again': again, 'retagged': retagged,
                      'retire_plan': retire_plan, 'retired': retired, 'retired_again': retired_again} | to_json }}"
        dest: "{{ results_file }}"
        mode: "0600"
"""


def test_playbook_check_diff_and_idempotency(moto_endpoint: str, tmp_path: Path) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
    base = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"][0]
    instance_id = ec2.run_instances(ImageId=base["ImageId"], MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    (tmp_path / "hosts.ini").write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    results_file = tmp_path / "results.json"
    extra = json.dumps({"endpoint": moto_endpoint, "instance_id": instance_id, "results_file": str(results_file)})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_", "EC2_"))}
    env.update({"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "hosts.ini", "site.yml", "-e", extra],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"

    results = json.loads(results_file.read_text())
    assert results["planned"]["changed"] is True and results["planned"]["image_id"] is None
    created = results["created"]
    assert created["changed"] is True and created["image"]["tags"] == {"role": "web"}
    assert results["again"]["changed"] is False and results["again"]["image_id"] == created["image_id"]
    assert results["retagged"]["changed"] is True and results["retagged"]["image"]["tags"] == {"role": "database"}
    # The diff callback shows the tag change.
    assert '-        "role": "web"' in proc.stdout and '+        "role": "database"' in proc.stdout, proc.stdout

    plan, retired = results["retire_plan"], results["retired"]
    assert plan["deregistered"] == {"us-east-1": [created["image_id"]]}
    for key in ("deregistered", "deleted_snapshots", "skipped"):
        assert plan[key] == retired[key], key
    assert retired["deleted_snapshots"] == {"us-east-1": created["image"]["snapshot_ids"]}
    assert results["retired_again"]["changed"] is False
    assert ec2.describe_images(Owners=["self"])["Images"] == []
