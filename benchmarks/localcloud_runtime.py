# SPDX-License-Identifier: GPL-3.0-or-later
"""The local cloud's instance runtime: boot time, memory per idle instance, cached base image.

Run (as root): .venv/bin/python benchmarks/localcloud_runtime.py [--count 8]

Side by side, in one run and one fresh state directory:
- building the base layer the first time vs finding it cached (a second start of the cloud);
- launch -> sshd answering, one instance alone vs --count launched at once;
- the same with RSA host keys generated at boot (empty key pool) vs taken from the key pool;
- the memory an idle instance costs: proportional set size (PSS) of all its processes
  (sshd in the namespace plus the host-side `unshare` that holds it), and their RSS.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# benchmarks/ holds copy.py, which would shadow the standard library's copy module.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from localcloud.runtime import Runtime, procs  # noqa: E402

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx2cWJ5b3dkYmVuY2htYXJrb25seW5vdGFyZWFsa2V5 bench"


def timed_launches(rt: Runtime, base: str, ids: list[str]) -> list[float]:
    """Launch all ids back to back; seconds from each launch call to its sshd answering."""
    started = {}
    for instance_id in ids:
        started[instance_id] = time.monotonic()
        rt.launch(instance_id, [base], authorized_keys=[PUBLIC_KEY])
    pending = set(ids)
    ready: dict[str, float] = {}
    deadline = time.monotonic() + 120
    while pending and time.monotonic() < deadline:
        for instance_id in list(pending):
            if rt.is_ready(instance_id):
                ready[instance_id] = time.monotonic() - started[instance_id]
                pending.discard(instance_id)
        time.sleep(0.01)
    if pending:
        raise SystemExit(f"instances never became ready: {sorted(pending)}")
    return [ready[i] for i in ids]


def rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def wait_pool(rt: Runtime, size: int) -> None:
    deadline = time.monotonic() + 300
    while len(list(rt.keypool.root.glob("*.key"))) < size and time.monotonic() < deadline:
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=8)
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="lc-bench-") as tmp:
        state = Path(tmp) / "state"
        rt = Runtime(state)
        rt.check_host()
        rt.keypool.close()  # first: no key pool, every RSA host key made at boot
        t0 = time.monotonic()
        base = rt.ensure_base_layer()
        first_build = time.monotonic() - t0
        t0 = time.monotonic()
        Runtime(state).ensure_base_layer()
        cached = time.monotonic() - t0
        rows.append(("base layer: first build vs cached", f"{first_build:.3f} s", f"{cached:.4f} s",
                     f"{first_build / cached:.0f}x"))

        no_pool_one = timed_launches(rt, base, ["i-nopool-one"])[0]
        no_pool_many = timed_launches(rt, base, [f"i-nopool-{n}" for n in range(args.count)])
        rt.shutdown()
        for instance_id in rt.instance_ids():
            rt.terminate(instance_id)

        rt = Runtime(state)
        rt.ensure_base_layer()
        wait_pool(rt, rt.keypool.size)
        pool_one = timed_launches(rt, base, ["i-pool-one"])[0]
        wait_pool(rt, rt.keypool.size)
        ids = [f"i-pool-{n}" for n in range(args.count)]
        pool_many = timed_launches(rt, base, ids)
        rows.append(("launch -> sshd, 1 instance (no pool vs pool)", f"{no_pool_one:.2f} s", f"{pool_one:.2f} s",
                     f"{no_pool_one / pool_one:.1f}x"))
        rows.append((f"launch -> sshd, {args.count} at once, median (no pool vs pool)",
                     f"{statistics.median(no_pool_many):.2f} s", f"{statistics.median(pool_many):.2f} s",
                     f"{statistics.median(no_pool_many) / statistics.median(pool_many):.1f}x"))
        rows.append((f"launch -> sshd, {args.count} at once, slowest (no pool vs pool)",
                     f"{max(no_pool_many):.2f} s", f"{max(pool_many):.2f} s",
                     f"{max(no_pool_many) / max(pool_many):.1f}x"))
        time.sleep(2)  # let the pool refill settle so idle means idle
        pss, rss_total = [], []
        for instance_id in ids:
            instance = rt._instance(instance_id)
            pid, _started, init = instance._processes()
            members = [pid, *procs.namespace_members(init)] if pid and init else []
            pss.append(procs.proportional_memory(members))
            rss_total.append(rss(members))
        rows.append(("idle instance memory: PSS vs RSS (sshd + unshare)",
                     f"{statistics.mean(pss) / 2**20:.2f} MiB", f"{statistics.mean(rss_total) / 2**20:.2f} MiB",
                     f"{statistics.mean(rss_total) / statistics.mean(pss):.1f}x"))
        rt.shutdown()
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'A':>10}  {'B':>10}  {'A/B':>6}")
    for name, a, b, ratio in rows:
        print(f"{name:<{width}}  {a:>10}  {b:>10}  {ratio:>6}")


if __name__ == "__main__":
    main()
