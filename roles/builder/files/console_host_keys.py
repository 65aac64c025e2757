# SPDX-License-Identifier: GPL-3.0-or-later
"""Prints the SSH host keys an instance wrote to its console (the cloud-init key block) as JSON.

Run on the controller by the builder role; exits 3 while the block is not there yet.
"""
from __future__ import annotations

import argparse
import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# Throttled answers are retried here and, past that, reported as "not yet" (exit 3) so the
# role's own retry loop goes on: a busy account must not fail the bake at this step.
THROTTLING = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"


def host_keys_from_console(text: str) -> list[str]:
    """'type base64' for each key of the last complete block (a reboot prints a new one)."""
    keys: list[str] = []
    end = text.rfind(END)
    begin = text.rfind(BEGIN, 0, end) if end >= 0 else -1
    if begin < 0:
        return keys
    for line in text[begin + len(BEGIN):end].splitlines():
        fields = line.split()
        if len(fields) >= 2 and (fields[0].startswith(("ssh-", "ecdsa-", "sk-"))):
            keys.append(f"{fields[0]} {fields[1]}")
    return keys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--endpoint-url", default="")
    parser.add_argument("--profile", default="")
    args = parser.parse_args()
    session = boto3.session.Session(profile_name=args.profile or None, region_name=args.region)
    ec2 = session.client("ec2", endpoint_url=args.endpoint_url or None,
                         config=Config(retries={"mode": "standard", "max_attempts": 10}))
    try:
        output = ec2.get_console_output(InstanceId=args.instance_id, Latest=True).get("Output") or ""
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in THROTTLING:
            print(json.dumps({"host_keys": [], "throttled": True}))
            return 3
        raise
    keys = host_keys_from_console(output)
    print(json.dumps({"host_keys": keys}))
    return 0 if keys else 3


if __name__ == "__main__":
    sys.exit(main())
