# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the bake tests: a moto server, ansible-playbook runs, what a bake left behind."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Moto:
    endpoint_url: str

    def client(self, service: str, region: str = "us-east-1") -> Any:
        import boto3

        return boto3.client(service, region_name=region, endpoint_url=self.endpoint_url, **_boto_credentials())


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def run_playbook(playbook: Path, extra_vars: dict[str, Any], *args: str,
                 env: dict[str, str] | None = None, timeout: float = 900,
                 inventory: Path = HERE / "inventory.yml") -> subprocess.CompletedProcess[str]:
    """ansible-playbook as a user runs it, from the repository root (its ansible.cfg)."""
    import json

    environment = {
        **os.environ,
        **FAKE_CREDENTIALS,
        "AWS_REGION": "us-east-1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        **(env or {}),
    }
    environment.pop("AWS_ENDPOINT_URL", None)
    command = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook),
               "-e", json.dumps(extra_vars), *args]
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=timeout, check=False)


def bake_resources(moto: Moto, bake_id: str | None = None, region: str = "us-east-1") -> dict[str, list[str]]:
    """What a bake left in a region: live instances, security groups, key pairs (by bake tag)."""
    ec2 = moto.client("ec2", region)
    key = "tag:bakery:bake-id" if bake_id else "tag-key"
    value = [bake_id] if bake_id else ["bakery:bake-id"]
    filters = [{"Name": key, "Values": value}]
    live = ["pending", "running", "stopping", "stopped", "shutting-down"]
    instances = [
        i["InstanceId"]
        for r in ec2.describe_instances(Filters=filters + [{"Name": "instance-state-name", "Values": live}])["Reservations"]
        for i in r["Instances"]
    ]
    groups = [g["GroupId"] for g in ec2.describe_security_groups(Filters=filters)["SecurityGroups"]]
    keys = [k["KeyName"] for k in ec2.describe_key_pairs(Filters=filters)["KeyPairs"]]
    return {"instances": instances, "security_groups": groups, "key_pairs": keys}


NOTHING: dict[str, list[str]] = {"instances": [], "security_groups": [], "key_pairs": []}


def base_vars(moto: Moto, source: str, **more: Any) -> dict[str, Any]:
    return {
        "bake_endpoint_url": moto.endpoint_url,
        "bake_region": "us-east-1",
        "builder_source_ami_id": source,
        "builder_ssh_cidr": "127.0.0.1/32",
        **more,
    }
