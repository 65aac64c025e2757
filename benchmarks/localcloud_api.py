# SPDX-License-Identifier: GPL-3.0-or-later
"""Local cloud API: call overhead against plain moto, and lifecycle timings with real instances.

    .venv/bin/python benchmarks/localcloud_api.py

Runs as root (the instance runtime needs it); uses a temporary state directory.
"""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The repository root instead of benchmarks/ (whose copy.py would shadow the standard library's).
sys.path[0] = str(Path(__file__).resolve().parents[1])

from localcloud.testing import RunningCloud, local_cloud, waiter  # noqa: E402

CALLS = 200


def _median_ms(call: Callable[[], Any], count: int = CALLS) -> float:
    samples = []
    for _attempt in range(count):
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _plain_moto_client() -> tuple[subprocess.Popen[bytes], Any]:
    """moto's own server in its own process (as the local cloud's daemon is), without sample AMIs."""
    import boto3

    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - moto's own server module
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    client = boto3.client(
        "ec2", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="x", aws_secret_access_key="x",
    )
    return server, client


def _lifecycle(cloud: RunningCloud) -> list[tuple[str, float]]:
    ec2 = cloud.client("ec2")
    base = cloud.base_image_id()
    rows = []

    def launch(count: int) -> list[str]:
        began = time.monotonic()
        ids = [i["InstanceId"] for i in ec2.run_instances(ImageId=base, MinCount=count, MaxCount=count)["Instances"]]
        pending = set(ids)
        while pending:
            for reservation in ec2.describe_instances(InstanceIds=sorted(pending))["Reservations"]:
                pending -= {i["InstanceId"] for i in reservation["Instances"] if i["State"]["Name"] == "running"}
            time.sleep(0.05)
        rows.append((f"RunInstances x{count} -> all running (s)", time.monotonic() - began))
        return ids

    (single,) = launch(1)
    eight = launch(8)
    began = time.monotonic()
    ec2.stop_instances(InstanceIds=[single])
    waiter(ec2, "instance_stopped", InstanceIds=[single])
    rows.append(("StopInstances -> stopped (s)", time.monotonic() - began))
    began = time.monotonic()
    image = ec2.create_image(InstanceId=single, Name="bench-image")["ImageId"]
    waiter(ec2, "image_available", ImageIds=[image])
    rows.append(("CreateImage -> available (s)", time.monotonic() - began))
    west = cloud.client("ec2", "eu-west-1")
    began = time.monotonic()
    copy = west.copy_image(SourceImageId=image, SourceRegion="us-east-1", Name="bench-image")["ImageId"]
    waiter(west, "image_available", ImageIds=[copy])
    rows.append(("CopyImage -> available (s)", time.monotonic() - began))
    began = time.monotonic()
    ec2.terminate_instances(InstanceIds=[single, *eight])
    waiter(ec2, "instance_terminated", InstanceIds=[single, *eight])
    rows.append(("TerminateInstances x9 -> terminated (s)", time.monotonic() - began))
    return rows


def main() -> int:
    server, plain = _plain_moto_client()
    try:
        plain_images = _median_ms(lambda: plain.describe_images(Owners=["self"]))
        plain_keys = _median_ms(plain.describe_key_pairs)
    finally:
        server.terminate()
        server.wait()
    with tempfile.TemporaryDirectory(prefix="localcloud-bench-") as tmp, local_cloud(Path(tmp) / "cloud") as cloud:
        ec2 = cloud.client("ec2")
        ours_images = _median_ms(lambda: ec2.describe_images(Owners=["self"]))
        ours_keys = _median_ms(ec2.describe_key_pairs)
        logged = cloud.count(action="DescribeKeyPairs")
        rows = _lifecycle(cloud)
    print(f"API call median over {CALLS} calls (ms)   plain moto   local cloud   ratio")
    for name, base, ours in (("DescribeImages", plain_images, ours_images), ("DescribeKeyPairs", plain_keys, ours_keys)):
        print(f"  {name:<36} {base:>10.2f}   {ours:>11.2f}   {ours / base:>5.2f}x")
    print(f"  (request log holds {logged} DescribeKeyPairs entries)")
    print("Lifecycle with real instances, no injected latency")
    for name, seconds in rows:
        print(f"  {name:<44} {seconds:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
