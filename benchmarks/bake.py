# SPDX-License-Identifier: GPL-3.0-or-later
"""A whole bake with 3 copy regions: playbooks/bake.yml (a) against a plain amazon.aws playbook (b).

Run (as root, the local cloud needs it):  .venv/bin/python benchmarks/bake.py [--rounds N] [--only a|b]

Starts its own local cloud (private state directory, stopped at the end whatever happens) with
the fixed latency profile LATENCY below, then alternates for N rounds (default 2):
(a) `ansible-playbook -i inventories/local playbooks/bake.yml` with 3 copy regions and the
    example_web customization of the local inventory;
(b) benchmarks/bake_baseline/bake.yml: the same bake written with amazon.aws.ec2_key /
    ec2_security_group / ec2_instance / ec2_ami, a loop of community.aws.ec2_ami_copy (wait: true
    each) and ansible.builtin.ssh (host keys checked against a known_hosts file built from the
    console output), the same example_web role, bakery.ami.generalize, and a cleanup of the same
    resources with the same amazon.aws modules.
Each run is checked (images available in every region, no builder left) and its EC2 calls are
counted from the local cloud's request log. Medians over the rounds are printed.

The latency floor of a bake is what no client can avoid given the injected latencies:
- the transitions on the critical path: instance pending + instance stopping + image pending +
  the longest of the copies and the builder's shutting down (once the image is available the
  copies, the builder's termination and then the removal of its security group and key pair can
  all run at once, so only the longest counts);
- the per-call latency of the calls on that path, one after another: GetParameter (source AMI),
  ImportKeyPair, CreateSecurityGroup, AuthorizeSecurityGroupIngress, RunInstances,
  DescribeInstances (running), GetConsoleOutput, StopInstances, DescribeInstances (stopped),
  CreateImage, DescribeImages (available), CopyImage, DescribeImages (copy available) (13);
- the customization's own time on the builder, measured in the same run of (a): from the start
  of example_web's first task to the end of generalize's last task (the SSH connection set-up,
  fact gathering and everything on the controller are not in it: they are overhead).
overhead = (a's wall time - floor) / floor.
"""
from __future__ import annotations

import os
import sys

# The repository root (for `localcloud`) instead of benchmarks/, before any import: a benchmark's
# file name must never shadow a standard module.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from localcloud.testing import RunningCloud, local_cloud  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

BASELINE = REPO / "benchmarks" / "bake_baseline"
BIN = Path(sys.executable).parent
SOURCE_REGION = "us-east-1"
COPY_REGIONS = {"us-west-2": 8.0, "eu-west-1": 12.0, "ap-southeast-2": 16.0}
LATENCY: dict[str, Any] = {
    "instance_pending": 5.0,
    "instance_stopping": 5.0,
    "instance_shutting_down": 3.0,
    "image_pending": 10.0,
    "copy_pending": 10.0,
    "copy_pending_regions": COPY_REGIONS,
    "api_call": 0.05,
}
CRITICAL_CALLS = 13
# Tasks that wait on an injected transition (launch, stop, image, copies, terminate).
WAIT_ACTIONS = {"amazon.aws.ec2_instance", "amazon.aws.ec2_instance_info", "bakery.ami.ami_create",
                "bakery.ami.ami_copy", "amazon.aws.ec2_ami", "community.aws.ec2_ami_copy"}
TARGETS = {"wall": 0.6, "calls": 0.5, "overhead": 0.15}


@dataclass
class Run:
    variant: str
    wall: float
    calls: dict[str, int]
    other_calls: int
    customization: float
    waiting: float
    task_count: int
    tasks: list[tuple[str, float]] = field(default_factory=list)

    @property
    def ec2_calls(self) -> int:
        return sum(self.calls.values())


def floor_seconds(customization: float) -> float:
    transitions = (LATENCY["instance_pending"] + LATENCY["instance_stopping"] + LATENCY["image_pending"]
                   + max(*COPY_REGIONS.values(), LATENCY["instance_shutting_down"]))
    return transitions + CRITICAL_CALLS * LATENCY["api_call"] + customization


def task_durations(events: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    """Each task with its duration (until the next play or task starts, or the run ends)."""
    timed = []
    for event, following in zip(events, events[1:], strict=False):
        if event["kind"] == "task":
            timed.append((event, following["time"] - event["time"]))
    return timed


def customization_seconds(events: list[dict[str, Any]]) -> float:
    """From example_web's first task to the end of generalize's last one."""
    timed = task_durations(events)
    indexes = [i for i, (event, _) in enumerate(timed) if event["role"].endswith(("example_web", "generalize"))]
    if not indexes or not any(timed[i][0]["role"].endswith("example_web") for i in indexes):
        raise RuntimeError("the run's timing has no example_web or generalize task")
    first, last = indexes[0], indexes[-1]
    return timed[last][0]["time"] + timed[last][1] - timed[first][0]["time"]


def ansible_env(cloud: RunningCloud, timing: Path) -> dict[str, str]:
    return {
        **os.environ,
        **cloud.env,
        "LOCALCLOUD_STATE_DIR": str(cloud.state_dir),
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_CALLBACK_PLUGINS": str(BASELINE / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "bake_timer",
        "ANSIBLE_NOCOLOR": "1",
        "BAKE_BENCH_TIMING": str(timing),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def playbook_command(variant: str, run_id: str, workdir: Path) -> list[str]:
    regions = list(COPY_REGIONS)
    if variant == "a":
        extra = {"bake_id": run_id, "bake_copy_regions": regions,
                 "image_manifest_path": str(workdir / f"{run_id}.manifest.json")}
        playbook = REPO / "playbooks" / "bake.yml"
    else:
        extra = {"baseline_id": run_id, "bake_copy_regions": regions}
        playbook = BASELINE / "bake.yml"
    return [str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories" / "local"), str(playbook),
            "-e", json.dumps(extra)]


def check_run(cloud: RunningCloud, variant: str, run_id: str, workdir: Path) -> None:
    """The bake made an available image in every region and left no builder running."""
    if variant == "a":
        build = json.loads((workdir / f"{run_id}.manifest.json").read_text())["builds"][-1]
        images = dict(pair.split(":", 1) for pair in build["artifact_id"].split(","))
    else:
        images = {}
        for region in [SOURCE_REGION, *COPY_REGIONS]:
            found = cloud.client("ec2", region).describe_images(
                Owners=["self"], Filters=[{"Name": "name", "Values": [f"baseline-{run_id}"]}])["Images"]
            images[region] = found[0]["ImageId"] if len(found) == 1 else "missing"
    if sorted(images) != sorted([SOURCE_REGION, *COPY_REGIONS]):
        raise RuntimeError(f"({variant}) {run_id}: images in {sorted(images)}, expected the source and copy regions")
    for region, image_id in images.items():
        state = cloud.client("ec2", region).describe_images(ImageIds=[image_id])["Images"][0]["State"]
        if state != "available":
            raise RuntimeError(f"({variant}) {run_id}: image {image_id} in {region} is {state}")
    live = cloud.client("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    if any(r["Instances"] for r in live["Reservations"]):
        raise RuntimeError(f"({variant}) {run_id}: a builder instance is still there")


def run_variant(cloud: RunningCloud, variant: str, run_id: str, workdir: Path) -> Run:
    timing = workdir / f"{run_id}.timing.json"
    command = playbook_command(variant, run_id, workdir)
    mark = time.time()
    began = time.monotonic()
    proc = subprocess.run(command, cwd=REPO, env=ansible_env(cloud, timing), capture_output=True, text=True,
                          check=False, timeout=1800)
    wall = time.monotonic() - began
    ended = time.time()
    (workdir / f"{run_id}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"({variant}) {run_id} failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-3000:]}")
    requests = [r for r in cloud.requests(since=mark) if r["time"] <= ended]
    calls: dict[str, int] = {}
    for entry in requests:
        if entry["service"] == "ec2":
            calls[entry["action"]] = calls.get(entry["action"], 0) + 1
    check_run(cloud, variant, run_id, workdir)
    events = json.loads(timing.read_text())
    timed = task_durations(events)
    tasks = sorted(((e["task"], d) for e, d in timed), key=lambda item: -item[1])
    waiting = sum(d for e, d in timed if e["action"] in WAIT_ACTIONS)
    return Run(variant, wall, calls, len(requests) - sum(calls.values()), customization_seconds(events), waiting,
               len(timed), tasks)


def injected_wait(variant: str) -> float:
    """The injected latency a variant's waits sit through: (a) copies at once while the builder
    terminates, (b) copies one region after another, then terminates the builder."""
    before = LATENCY["instance_pending"] + LATENCY["instance_stopping"] + LATENCY["image_pending"]
    if variant == "a":
        return before + max(*COPY_REGIONS.values(), LATENCY["instance_shutting_down"])
    return before + sum(COPY_REGIONS.values()) + LATENCY["instance_shutting_down"]


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def report(runs: list[Run], rounds: int) -> None:
    ours = [r for r in runs if r.variant == "a"]
    base = [r for r in runs if r.variant == "b"]
    med = statistics.median
    a_wall, b_wall = med(r.wall for r in ours), med(r.wall for r in base)
    a_calls, b_calls = med(r.ec2_calls for r in ours), med(r.ec2_calls for r in base)
    floors = [floor_seconds(r.customization) for r in ours]
    overheads = [(r.wall - f) / f for r, f in zip(ours, floors, strict=True)]
    custom = med(r.customization for r in ours)
    floor = floor_seconds(custom)
    profile = ", ".join(f"{k} {v:g}s" for k, v in LATENCY.items() if not isinstance(v, dict))
    copies = ", ".join(f"{k} {v:g}s" for k, v in COPY_REGIONS.items())
    print(f"\nbake benchmark: {rounds} round(s), copies to {len(COPY_REGIONS)} regions; latency: {profile}; "
          f"copy pending: {copies}")
    print(f"load at the end: {Path('/proc/loadavg').read_text().split()[:3]} on {os.cpu_count()} cores\n")
    print(f"{'variant (median of rounds)':44} {'wall s':>7} {'EC2 calls':>9} {'other calls':>11} {'customize s':>11}")
    for label, group in (("(a) playbooks/bake.yml", ours), ("(b) amazon.aws + community.aws + ssh", base)):
        print(f"{label:44} {med(r.wall for r in group):7.1f} {med(r.ec2_calls for r in group):9.0f} "
              f"{med(r.other_calls for r in group):11.0f} {med(r.customization for r in group):11.1f}")
    print("per round (wall s / EC2 calls): " + "; ".join(f"{r.variant} {r.wall:.1f}/{r.ec2_calls}" for r in runs))
    transitions = floor - custom - CRITICAL_CALLS * LATENCY["api_call"]
    print(f"\nlatency floor = transitions {transitions:.1f}s + {CRITICAL_CALLS} calls x {LATENCY['api_call']:g}s"
          f" + customization {custom:.1f}s (measured in (a)) = {floor:.1f}s")
    print(f"\n{'ratio':44} {'measured':>8} {'target':>8}  verdict")
    rows = (("(a)/(b) wall time", a_wall / b_wall, TARGETS["wall"]),
            ("(a)/(b) EC2 API calls", a_calls / b_calls, TARGETS["calls"]),
            ("(a) overhead above the floor (a-floor)/floor", med(overheads), TARGETS["overhead"]))
    for label, value, target in rows:
        print(f"{label:44} {value:8.2f} {target:8.2f}  {verdict(value, target)}")
    print("\nwhere the time goes (medians): tasks of the instance and image modules (they hold the launch, stop,"
          " image, copy and terminate waits) against the latency injected there; customization; the rest (every"
          " other task, ansible-playbook's start)")
    for label, group in (("(a)", ours), ("(b)", base)):
        variant = group[0].variant
        waiting, wall = med(r.waiting for r in group), med(r.wall for r in group)
        custom_b = med(r.customization for r in group)
        injected = injected_wait(variant)
        print(f"  {label} instance/image tasks {waiting:.1f}s for {injected:.1f}s injected"
              f" (+{waiting - injected:.1f}s polling and module time); customization {custom_b:.1f}s;"
              f" {med(r.task_count for r in group):.0f} tasks in all, the rest {wall - waiting - custom_b:.1f}s")
    for label, group in (("(a)", ours), ("(b)", base)):
        detail = ", ".join(f"{action} {n}" for action, n in sorted(group[-1].calls.items()))
        print(f"\n{label} EC2 calls, last round: {detail}")
        print(f"{label} slowest tasks, last round: "
              + "; ".join(f"{name} {seconds:.1f}s" for name, seconds in group[-1].tasks[:8]))


def report_one(runs: list[Run]) -> None:
    """One variant alone: its figures and where its time and calls went, no ratios."""
    for run in runs:
        floor = floor_seconds(run.customization)
        print(f"({run.variant}) wall {run.wall:.1f}s, {run.ec2_calls} EC2 calls, customization {run.customization:.1f}s,"
              f" floor {floor:.1f}s, overhead {(run.wall - floor) / floor:.2f}, {run.task_count} tasks")
        print("  EC2 calls: " + ", ".join(f"{action} {n}" for action, n in sorted(run.calls.items())))
        print("  slowest tasks: " + "; ".join(f"{name} {seconds:.1f}s" for name, seconds in run.tasks[:12]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (a) then (b) (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the playbook logs and timings (printed path)")
    parser.add_argument("--only", choices=["a", "b"], help="run one variant (to look at it; no ratios)")
    args = parser.parse_args()
    # SIGTERM ends the run through the finally blocks, so the local cloud is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="bench-bake-"))
    runs: list[Run] = []
    try:
        with local_cloud(workdir / "cloud", settings={"latency": LATENCY}) as cloud:
            stamp = time.strftime("%H%M%S")
            for number in range(1, args.rounds + 1):
                for variant in (args.only,) if args.only else ("a", "b"):
                    run = run_variant(cloud, variant, f"bench-{stamp}-{number}{variant}", workdir)
                    print(f"round {number} ({variant}): {run.wall:.1f}s, {run.ec2_calls} EC2 calls", flush=True)
                    runs.append(run)
        if args.only:
            report_one(runs)
        else:
            report(runs, args.rounds)
    finally:
        if args.keep:
            print(f"\nlogs and timings kept in {workdir}")
        else:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
