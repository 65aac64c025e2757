# SPDX-License-Identifier: GPL-3.0-or-later
"""Prints known_hosts lines for an instance from the host key block cloud-init writes to its console.

What a user of the baseline playbook would do with `aws ec2 get-console-output`: one
GetConsoleOutput call; exit 3 while the block is not there yet (the playbook retries).
Usage: known_hosts_from_console.py INSTANCE_ID REGION ADDRESS
"""
from __future__ import annotations

import sys

import boto3

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"


def main(instance_id: str, region: str, address: str) -> int:
    output = boto3.client("ec2", region_name=region).get_console_output(InstanceId=instance_id).get("Output") or ""
    if BEGIN not in output or END not in output:
        return 3
    block = output[output.rindex(BEGIN) + len(BEGIN):output.rindex(END)]
    lines = [f"{address} {fields[0]} {fields[1]}" for fields in (line.split() for line in block.splitlines())
             if len(fields) >= 2]
    print("\n".join(lines))
    return 0 if lines else 3


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
