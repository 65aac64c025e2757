# SPDX-License-Identifier: GPL-3.0-or-later
"""Connection benchmark: the same 30-task play and a 50 MB copy over several connections.

Run as root (it starts its own sshd on loopback): .venv/bin/python benchmarks/connection.py
(a) bakery.ami.paramiko  (b) ansible.builtin.ssh, pipelining + ControlPersist
(c) the builtin paramiko plugin (ansible-core < 2.21 only)  (d) connection: local with pipelining (the floor)
Rounds alternate between the variants; medians are printed.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration" / "connection"))
from _paramiko_sshd import USER, Sshd, ensure_users, keygen, remove_users, stop_control_processes  # noqa: E402

BIN = Path(sys.executable).parent
TASKS = 30
# Records when each task starts and ends, so ansible-playbook's own start-up is left out.
TIMER = '''
from __future__ import annotations
import json, os, time
from ansible.plugins.callback import CallbackBase
class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events = []
    def v2_playbook_on_task_start(self, task, is_conditional):
        self.events.append(["start", task.get_name(), time.monotonic()])
    def v2_playbook_on_stats(self, stats):
        self.events.append(["end", "", time.monotonic()])
        failures = sum(stats.failures.values()) + sum(stats.dark.values())
        with open(os.environ["BENCH_TIMER_OUT"], "w") as out:
            json.dump({"events": self.events, "failures": failures}, out)
'''


def has_builtin_paramiko() -> bool:
    out = subprocess.run([str(BIN / "ansible-doc"), "-t", "connection", "-l"], capture_output=True, text=True).stdout
    return "paramiko_ssh" in out


class Bench:
    def __init__(self, work: Path, server: Sshd, client_key: Path) -> None:
        self.work = work
        self.server = server
        self.client_key = client_key
        self.plugins_ready = False
        (work / "callbacks").mkdir()
        (work / "callbacks" / "bench_timer.py").write_text(TIMER)
        (work / "home" / ".ssh").mkdir(parents=True)
        self.known_hosts = work / "home" / ".ssh" / "known_hosts"
        self.known_hosts.write_text(server.known_hosts_line(0) + server.known_hosts_line(1))
        self.big = work / "big.bin"
        with open(self.big, "wb") as out:
            for _ in range(50):
                out.write(os.urandom(1024 * 1024))

    def hostvars(self, variant: str) -> dict[str, object]:
        remote = {"ansible_host": self.server.address, "ansible_port": self.server.port, "ansible_user": USER,
                  "ansible_private_key_file": str(self.client_key), "ansible_python_interpreter": "/usr/bin/python3"}
        if variant == "a":
            return {**remote, "ansible_connection": "bakery.ami.paramiko", "ansible_pipelining": True,
                    "ansible_paramiko_known_hosts_file": str(self.known_hosts),
                    "ansible_paramiko_control_path_dir": str(self.work / "cp-a")}
        if variant == "b":
            return {**remote, "ansible_connection": "ansible.builtin.ssh", "ansible_pipelining": True,
                    "ansible_ssh_args": "-o ControlMaster=auto -o ControlPersist=60s",
                    "ansible_control_path_dir": str(self.work / "cp-b"),
                    "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes"}
        if variant == "c":
            return {**remote, "ansible_connection": "ansible.builtin.paramiko_ssh"}
        # the same interpreter and pipelining as the remote variants, so only the connection differs
        return {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_pipelining": True}

    def run(self, variant: str, tasks: list[dict[str, object]], label: str) -> list[tuple[str, str, float]]:
        inventory = self.work / f"inv-{variant}.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {"target": self.hostvars(variant)}}}))
        playbook = self.work / f"{label}.yml"
        playbook.write_text(yaml.safe_dump([{"hosts": "target", "gather_facts": False, "tasks": tasks}]))
        out = self.work / "timer.json"
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "HOME": str(self.work / "home"),
               "ANSIBLE_CALLBACK_PLUGINS": str(self.work / "callbacks"), "ANSIBLE_CALLBACKS_ENABLED": "bench_timer",
               "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.null", "BENCH_TIMER_OUT": str(out),
               "ANSIBLE_HOST_KEY_CHECKING": "true"}
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)], cwd=REPO, env=env,
                              capture_output=True, text=True)
        result = json.loads(out.read_text()) if out.exists() else None
        if proc.returncode != 0 or not result or result["failures"]:
            raise SystemExit(f"{label} over ({variant}) failed:\n{proc.stdout}\n{proc.stderr}")
        out.unlink()
        return [(kind, name, float(when)) for kind, name, when in result["events"]]

    def per_task_ms(self, variant: str) -> float:
        events = self.run(variant, [{"command": "true"} for _ in range(TASKS)], "tasks")
        return (events[-1][2] - events[0][2]) * 1000 / TASKS

    def copy_s(self, variant: str, round_no: int) -> float:
        dest = f"/tmp/bench-copy-{variant}-{round_no}.bin"
        tasks: list[dict[str, object]] = [{"name": "warm", "command": "rm -f /tmp/bench-copy-*"},
                 {"name": "copy", "copy": {"src": str(self.big), "dest": dest}},
                 {"name": "done", "command": "true"}]
        events = self.run(variant, tasks, "copy")
        start = next(e[2] for e in events if e[1] == "copy")
        end = next(e[2] for e in events if e[1] == "done")
        return end - start

    def put_s(self, variant: str) -> float:
        """put_file alone through the connection plugin on a warm session: the transfer without the copy module."""
        from ansible.playbook.play_context import PlayContext
        from ansible.plugins.loader import connection_loader, init_plugin_loader

        if not self.plugins_ready:
            init_plugin_loader()
            self.plugins_ready = True
        hostvars = self.hostvars(variant)
        connection = connection_loader.get(str(hostvars["ansible_connection"]), PlayContext(), io.StringIO())
        connection.set_options(var_options=hostvars)
        connection._connect()
        rc = connection.exec_command("rm -f /tmp/bench-put-*")[0]
        if rc != 0:
            raise SystemExit(f"put over ({variant}): the warm-up command failed")
        started = time.monotonic()
        connection.put_file(str(self.big), f"/tmp/bench-put-{variant}.bin")
        return time.monotonic() - started

    def raw_sftp_s(self) -> float:
        import paramiko
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.connect(self.server.address, self.server.port, USER, key_filename=str(self.client_key),
                       allow_agent=False, look_for_keys=False)
        try:
            sftp = client.open_sftp()
            started = time.monotonic()
            sftp.put(str(self.big), "/tmp/bench-copy-raw.bin")
            return time.monotonic() - started
        finally:
            client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark starts its own sshd and test user")
    variants = ["a", "b", "c", "d"] if has_builtin_paramiko() else ["a", "b", "d"]
    names = {"a": "bakery.ami.paramiko", "b": "ssh + pipelining + ControlPersist", "c": "builtin paramiko_ssh",
             "d": "local (floor)"}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # still clean up users and sshd
    created = ensure_users()
    os.environ["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")  # put_s loads the plugins in this process
    work = Path(tempfile.mkdtemp(prefix="bbench"))
    work.chmod(0o755)
    server = Sshd(work / "sshd", "127.66.1.1", work / "authorized_keys")
    client_key = keygen(work / "client")
    shutil.copy(f"{client_key}.pub", work / "authorized_keys")
    server.start()
    try:
        bench = Bench(work, server, client_key)
        tasks: dict[str, list[float]] = {v: [] for v in variants}
        copies: dict[str, list[float]] = {"put-a": [], "put-b": [], "raw": [], "a": [], "b": []}
        for round_no in range(args.rounds):
            order = variants[round_no % len(variants):] + variants[:round_no % len(variants)]
            for variant in order:
                tasks[variant].append(bench.per_task_ms(variant))
            steps = ("a", "b", "put-a", "put-b", "raw")
            for variant in steps if round_no % 2 == 0 else steps[::-1]:
                if variant == "raw":
                    copies[variant].append(bench.raw_sftp_s())
                elif variant.startswith("put-"):
                    copies[variant].append(bench.put_s(variant[-1]))
                else:
                    copies[variant].append(bench.copy_s(variant, round_no))
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
        med = {v: statistics.median(x) for v, x in tasks.items()}
        print(f"\n{TASKS}-task play, per task (median of {args.rounds} alternating rounds)")
        print(f"{'connection':40} {'ms/task':>9} {'(a)/this':>9}")
        for variant in variants:
            print(f"({variant}) {names[variant]:36} {med[variant]:9.1f} {med['a'] / med[variant]:9.2f}")
        cmed = {v: statistics.median(x) for v, x in copies.items()}
        print(f"\n50 MiB copy (median of {args.rounds})")
        print(f"{'transfer':40} {'seconds':>9} {'MiB/s':>9} {'this/raw':>9}")
        labels = {"put-a": "(a) put_file, bakery.ami.paramiko", "put-b": "(b) put_file, ssh + ControlPersist",
                  "raw": "raw paramiko SFTP put", "a": "(a) copy task (module work included)",
                  "b": "(b) copy task (module work included)"}
        for variant in ("put-a", "put-b", "raw", "a", "b"):
            print(f"{labels[variant]:40} {cmed[variant]:9.3f} {50 / cmed[variant]:9.1f} {cmed[variant] / cmed['raw']:9.2f}")
        targets = [("(a)/(b) per task", med["a"] / med["b"], 1.0), ("(a)/(d) per task", med["a"] / med["d"], 1.1),
                   ("50 MiB over (a) / raw SFTP put", cmed["put-a"] / cmed["raw"], 1.2)]
        if "c" in med:
            targets.insert(1, ("(a)/(c) per task", med["a"] / med["c"], 0.45))
        print(f"\n{'target':40} {'ratio':>9} {'limit':>9}")
        for label, ratio, limit in targets:
            print(f"{label:40} {ratio:9.2f} {limit:9.2f}  {'met' if ratio <= limit else 'missed'}")
    finally:
        server.stop()
        stop_control_processes(work / "cp-a")
        shutil.rmtree(work, ignore_errors=True)
        remove_users(created)
    return 0


if __name__ == "__main__":
    sys.exit(main())
