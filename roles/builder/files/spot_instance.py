# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the builder as a one-time spot instance with RunInstances, and prints its id as JSON.

amazon.aws.ec2_instance cannot ask for the spot market, so the builder role calls this for
builder_spot. The rest of the request (image, type, key, groups, tags...) comes on stdin, in
RunInstances' own shape; the role waits for the instance with its usual modules.
Exit 0 with {"instance_id": ...}, or 1 with {"error": "..."}.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def market_options(max_price: str) -> dict[str, Any]:
    """One-time and terminated on interruption: a builder cannot resume a half-done bake."""
    spot: dict[str, Any] = {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}
    if max_price:
        spot["MaxPrice"] = max_price
    return {"MarketType": "spot", "SpotOptions": spot}


def run_spot(ec2: Any, request: dict[str, Any], max_price: str, token: str) -> str:
    params = {**request, "MinCount": 1, "MaxCount": 1, "InstanceMarketOptions": market_options(max_price)}
    if token:
        # a retried call answers the first instance instead of starting a second one
        params["ClientToken"] = token
    return str(ec2.run_instances(**params)["Instances"][0]["InstanceId"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--region", required=True)
    parser.add_argument("--endpoint-url", default="")
    parser.add_argument("--profile", default="")
    parser.add_argument("--max-price", default="")
    parser.add_argument("--client-token", default="")
    args = parser.parse_args()
    request = json.load(sys.stdin)
    session = boto3.session.Session(profile_name=args.profile or None, region_name=args.region)
    ec2 = session.client("ec2", endpoint_url=args.endpoint_url or None,
                         config=Config(retries={"mode": "standard", "max_attempts": 10}))
    try:
        instance_id = run_spot(ec2, request, args.max_price, args.client_token)
    except ClientError as error:
        details = error.response.get("Error", {})
        print(json.dumps({"error": f"{details.get('Code', 'Error')}: {details.get('Message', str(error))}"}))
        return 1
    except BotoCoreError as error:
        print(json.dumps({"error": str(error)}))
        return 1
    print(json.dumps({"instance_id": instance_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
