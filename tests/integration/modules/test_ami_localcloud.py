# SPDX-License-Identifier: GPL-3.0-or-later
"""ami_create and ami_deregister through ansible-playbook against the local cloud, where a new
image stays pending for a while and calls can be throttled, as on AWS."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from localcloud.testing import RunningCloud, launch

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent

PLAYBOOK = """---
- name: Image an instance while EC2 is slow and throttling, then retire the image
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/bakery.ami.aws:
      endpoint_url: "{{ endpoint }}"
      access_key: "{{ access_key }}"
      secret_key: "{{ secret_key }}"
      region: us-east-1
  tasks:
    - name: Image the instance
      bakery.ami.ami_create:
        instance_id: "{{ instance_id }}"
        name: localcloud-web-1
        tags: {role: web}
        wait_timeout: 300
      register: created
      when: stage == "image"

    - name: Image it again (the name is taken now)
      bakery.ami.ami_create:
        instance_id: "{{ instance_id }}"
        name: localcloud-web-1
        tags: {role: web}
        wait_timeout: 300
      register: again
      when: stage == "image"

    - name: Retire it
      bakery.ami.ami_deregister:
        image_ids: ["{{ image_id }}"]
      register: retired
      when: stage == "retire"

    - name: Hand the results to the test
      ansible.builtin.copy:
        content: "{{ {'created': created, 'again': again, 'retired': retired} | to_json }}"
        dest: "{{ results_file }}.{{ stage }}"
        mode: "0600"
"""


def test_create_waits_through_pending_and_throttling(cloud: RunningCloud, localcloud_settings: Any, tmp_path: Path) -> None:
    ec2 = cloud.client("ec2")
    [instance] = launch(cloud, ec2)
    localcloud_settings.update_settings(
        {
            "latency": {"image_pending": 8.0},
            "faults": {
                "action_errors": [
                    # The first poll of the wait.
                    {"action": "DescribeImages", "code": "RequestLimitExceeded", "status": 503, "times": 1},
                ]
            },
        }
    )
    (tmp_path / "hosts.ini").write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    results_file = tmp_path / "results.json"
    extra = {
        "endpoint": cloud.endpoint_url,
        "access_key": cloud.env["AWS_ACCESS_KEY_ID"],
        "secret_key": cloud.env["AWS_SECRET_ACCESS_KEY"],
        "instance_id": instance["InstanceId"],
        "results_file": str(results_file),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_", "EC2_"))}
    env.update({"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})

    def play(stage: str, **more: str) -> dict[str, Any]:
        proc = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", "hosts.ini", "site.yml", "-e", json.dumps({**extra, **more, "stage": stage})],
            cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
        )
        assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
        return dict(json.loads(Path(f"{results_file}.{stage}").read_text()))

    mark = cloud.mark()
    results = play("image")
    created = results["created"]
    assert created["changed"] is True
    assert created["image"]["state"] == "available"
    assert created["image"]["tags"] == {"role": "web"}
    assert cloud.count(action="DescribeImages", outcome="injected", since=mark) == 1
    # The throttled poll and at least one more: the image was pending at first and the task waited.
    assert cloud.count(action="DescribeImages", outcome="ok", since=mark) >= 2
    # A new image needs no look-up by name, no instance check, no progress read in a short wait and
    # no read-back of snapshots or launch permissions; the second run learns from CreateImage that
    # the name is taken, looks the image up and reads its snapshots and launch permissions once.
    assert cloud.count(action="CreateImage", since=mark) == 2
    assert cloud.count(action="CreateImage", outcome="ok", since=mark) == 1
    assert cloud.count(action="DescribeInstances", since=mark) == 0
    assert cloud.count(action="DescribeSnapshots", since=mark) == 1
    assert cloud.count(action="DescribeImageAttribute", since=mark) == 1

    again = results["again"]
    assert again["changed"] is False and again["image_id"] == created["image_id"]
    assert again["image"] == created["image"]

    retired = play("retire", image_id=created["image_id"])["retired"]
    assert retired["deregistered"] == {"us-east-1": [created["image_id"]]}
    assert retired["deleted_snapshots"] == {"us-east-1": created["image"]["snapshot_ids"]}
    assert ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["localcloud-web-1"]}])["Images"] == []
