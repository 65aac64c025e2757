# SPDX-License-Identifier: GPL-3.0-or-later
"""bakery.ami.ami_copy to 4 regions in one task vs a loop of community.aws.ec2_ami_copy (wait: true).

Run: .venv/bin/python benchmarks/ami_copy.py [--delay SECONDS]

One moto server runs in this process on 127.0.0.1. Two small patches make it behave like EC2
where the comparison depends on it:
- a copied image stays `pending` for --delay seconds, then turns `available` (moto makes copies
  available at once, which would hide the cost of waiting);
- CopyImage applies its TagSpecifications to the new image and its snapshot, as EC2 does (moto
  drops them; ami_copy would otherwise add a CreateTags call per region that EC2 never needs).
A WSGI middleware counts every request by service and action. Each variant copies its own source
image, so neither finds the other's copies.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

REPO = Path(__file__).resolve().parents[1]
SOURCE_REGION = "us-east-1"
TARGETS = ["us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
SCOPE = re.compile(r"Credential=[^/]+/\d+/([^/]+)/([^/]+)/")


def drop_own_folder_from_path() -> None:
    """This file is copy.py: with its folder on sys.path, it would shadow the standard library's
    `copy` for botocore and moto, so those are imported only after the folder is dropped."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]


def patch_moto(delay: float) -> None:
    """Pending copies (for `delay` seconds) and tagged-at-copy images, as EC2 has them."""
    from moto.ec2.models.amis import AmiBackend
    from moto.ec2.responses.amis import AmisResponse

    real_copy, real_describe = AmiBackend.copy_image, AmiBackend.describe_images
    real_copy_response = AmisResponse.copy_image

    def copy_image(self: Any, *args: Any, **kwargs: Any) -> Any:
        ami: Any = real_copy(self, *args, **kwargs)
        ami.state = "pending"
        ami.available_at = time.monotonic() + delay
        return ami

    def describe_images(self: Any, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        for ami in list(self.amis.values()):
            if ami.state == "pending" and getattr(ami, "available_at", now) <= now:
                ami.state = "available"
        return real_describe(self, *args, **kwargs)

    def copy_image_response(self: Any) -> Any:
        result: Any = real_copy_response(self)
        image_id = result.result["ImageId"]
        ami = self.ec2_backend.amis[image_id]
        for spec in self._get_param("TagSpecifications", []):
            tags = {t["Key"]: t["Value"] for t in spec.get("Tags", [])}
            target = {"image": ami.id, "snapshot": ami.ebs_snapshot.id}.get(spec.get("ResourceType"))
            if target and tags:
                self.ec2_backend.create_tags([target], tags)
        return result

    AmiBackend.copy_image = copy_image  # type: ignore[method-assign]
    AmiBackend.describe_images = describe_images  # type: ignore[method-assign]
    AmisResponse.copy_image = copy_image_response  # type: ignore[method-assign]


class RequestCounter:
    """WSGI middleware: counts requests by (service, action)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.counts: Counter[tuple[str, str]] = Counter()
        self.timeline: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        scope = SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = scope.group(2) if scope else "?"
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        if not action:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            action = target.rsplit(".", 1)[-1] if target else environ.get("PATH_INFO", "")
        with self.lock:
            self.counts[(service, action)] += 1
            self.timeline.append((time.monotonic(), scope.group(1) if scope else "?", action))
        return self.app(environ, start_response)

    def take(self) -> Counter[tuple[str, str]]:
        with self.lock:
            counts, self.counts = self.counts, Counter()
        return counts


def start_server(counter_holder: list[RequestCounter]) -> str:
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    counter = RequestCounter(DomainDispatcherApplication(create_backend_app))
    counter_holder.append(counter)
    server = make_server("127.0.0.1", 0, counter, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def make_sources(endpoint: str) -> tuple[str, str]:
    """Two images of our own in the source region: one per variant."""
    import boto3

    ec2 = boto3.client("ec2", region_name=SOURCE_REGION, endpoint_url=endpoint)
    base = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"][0]
    instance = ec2.run_instances(ImageId=base["ImageId"], MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]
    ids = [ec2.create_image(InstanceId=instance["InstanceId"], Name=f"bench-source-{n}")["ImageId"] for n in (1, 2)]
    return ids[0], ids[1]


PLAYBOOKS = {
    "ours": """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: One task, four regions
      bakery.ami.ami_copy:
        source_image_id: "{{ source }}"
        source_region: %(source_region)s
        regions: %(regions)s
        name: bench-copy
        tags: {bench: ours}
        wait: true
""",
    "loop": """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: One task per region
      community.aws.ec2_ami_copy:
        source_image_id: "{{ source }}"
        source_region: %(source_region)s
        region: "{{ item }}"
        name: bench-copy
        tags: {bench: loop, source: "{{ source }}"}
        tag_equality: %(tag_equality)s
        wait: true
      loop: %(regions)s
""",
}


def run_playbook(workdir: Path, kind: str, source: str, endpoint: str, tag_equality: bool = True) -> float:
    text = PLAYBOOKS[kind] % {"source_region": SOURCE_REGION, "regions": json.dumps(TARGETS), "tag_equality": str(tag_equality).lower()}
    playbook = workdir / f"{kind}.yml"
    playbook.write_text("---" + text)
    env = {
        **os.environ,
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": SOURCE_REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),
    }
    start = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(workdir / "hosts.ini"), str(playbook), "-e", f"source={source}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{kind} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def check_copies(endpoint: str, source: str) -> None:
    """Every target region holds an available copy named bench-copy for this variant."""
    import boto3

    for region in TARGETS:
        ec2 = boto3.client("ec2", region_name=region, endpoint_url=endpoint)
        images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["bench-copy"]}])["Images"]
        mine = [i for i in images if source in json.dumps(i.get("Tags", []))]
        if len(mine) != 1 or mine[0]["State"] != "available":
            sys.exit(f"expected one available copy of {source} in {region}, found {mine}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=5.0, help="seconds a copy stays pending (default 5)")
    parser.add_argument("--no-tag-equality", action="store_true", help="also run the loop without tag_equality (not rerun-safe)")
    args = parser.parse_args()
    drop_own_folder_from_path()
    os.environ.update(CREDENTIALS)
    patch_moto(args.delay)
    holder: list[RequestCounter] = []
    endpoint = start_server(holder)
    counter = holder[0]
    ours_source, loop_source = make_sources(endpoint)

    rows: list[tuple[str, float, Counter[tuple[str, str]]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-copy-") as tmp:
        workdir = Path(tmp)
        (workdir / "ansible.cfg").write_text(f"[defaults]\ncollections_path = {REPO / 'collections'}\nretry_files_enabled = false\n")
        (workdir / "hosts.ini").write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
        counter.take()
        wall = run_playbook(workdir, "ours", ours_source, endpoint)
        rows.append(("bakery.ami.ami_copy, 1 task x 4 regions", wall, counter.take()))
        check_copies(endpoint, ours_source)
        wall = run_playbook(workdir, "loop", loop_source, endpoint)
        rows.append(("community.aws.ec2_ami_copy loop (tag_equality)", wall, counter.take()))
        check_copies(endpoint, loop_source)
        if args.no_tag_equality:
            _, third = make_sources(endpoint)
            counter.take()
            wall = run_playbook(workdir, "loop", third, endpoint, tag_equality=False)
            rows.append(("community.aws.ec2_ami_copy loop (no tag_equality)", wall, counter.take()))
            check_copies(endpoint, third)

    ours_wall, ours_counts = rows[0][1], rows[0][2]
    ours_calls = sum(n for (svc, _), n in ours_counts.items() if svc == "ec2")
    print(f"\nami_copy benchmark: {len(TARGETS)} regions, copies pending {args.delay:g}s, moto on {endpoint}\n")
    print(f"{'variant':52} {'wall s':>7} {'EC2 calls':>9} {'ours/this wall':>14} {'ours/this calls':>15}")
    for label, wall, counts in rows:
        calls = sum(n for (svc, _), n in counts.items() if svc == "ec2")
        print(f"{label:52} {wall:7.1f} {calls:9d} {ours_wall / wall:14.2f} {ours_calls / calls:15.2f}")
    for label, _, counts in rows:
        detail = ", ".join(f"{action} {n}" for (svc, action), n in sorted(counts.items()) if svc == "ec2")
        others = sum(n for (svc, _), n in counts.items() if svc != "ec2")
        print(f"  {label}: {detail}" + (f" (+{others} non-EC2)" if others else ""))
    loop_wall = rows[1][1]
    loop_calls = sum(n for (svc, _), n in rows[1][2].items() if svc == "ec2")
    verdict = "met" if ours_wall <= 0.35 * loop_wall and ours_calls < loop_calls else "NOT met"
    print(f"\ntarget (ours <= 0.35x the loop's wall time, fewer EC2 calls): {verdict}")


if __name__ == "__main__":
    main()
