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

    - name: Retire it
      bakery.ami.ami_deregister:
        image_ids: ["{{ created.image_id }}"]
      register: retired

    - name: Hand the results to the test
      ansible.builtin.copy:
        content: "{{ {'created': created, 'retired': retired} | to_json }}"
        dest: "{{ results_file }}"
        mode: "0600"
"""


def test_create_waits_through_pending_and_throttling(cloud: RunningCloud, localcloud_settings: Any, tmp_path: Path) -> None:
    ec2 = cloud.client("ec2")
    [instance] = launch(cloud, ec2)
    localcloud_settings.update_settings(
        {
            "latency": {"image_pending": 4.0},
            "faults": {
                "action_errors": [
                    # The first look-up by name, and the first two progress reads of the wait.
                    {"action": "DescribeImages", "code": "RequestLimitExceeded", "status": 503, "times": 1},
                    {"action": "DescribeSnapshots", "code": "RequestLimitExceeded", "status": 503, "times": 2},
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
    mark = cloud.mark()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "hosts.ini", "site.yml", "-e", json.dumps(extra)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"

    results = json.loads(results_file.read_text())
    created = results["created"]
    assert created["changed"] is True
    assert created["image"]["state"] == "available"
    assert created["image"]["tags"] == {"role": "web"}
    assert cloud.count(action="CreateImage", since=mark) == 1
    assert cloud.count(action="DescribeImages", outcome="injected", since=mark) == 1
    assert cloud.count(action="DescribeSnapshots", outcome="injected", since=mark) == 2
    # The look-up plus more than one poll: the image was pending at first and the task waited.
    assert cloud.count(action="DescribeImages", outcome="ok", since=mark) >= 3

    retired = results["retired"]
    assert retired["deregistered"] == {"us-east-1": [created["image_id"]]}
    assert retired["deleted_snapshots"] == {"us-east-1": created["image"]["snapshot_ids"]}
    assert ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["localcloud-web-1"]}])["Images"] == []
