# SPDX-License-Identifier: GPL-3.0-or-later
"""One instance: its directory, its namespaces' process, and its boots.

instances/<id>/ holds record.json (address, user, layers), upper/ and upper-usr/ (its
writable layers, for / and /usr), overlay work dirs, seed/ (first-boot input, read-only
inside), connect/ (Instance Connect keys), console.log, sshd.log and runtime.log (what the
host-side unshare says). Every record lives on
disk, so another process (the CLI's stop) can find and stop instances too.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from localcloud.runtime import procs
from localcloud.runtime.errors import RuntimeFailure
from localcloud.runtime.layers import copy_tree, remove_tree
from localcloud.runtime.portmap import PortMap
from localcloud.runtime.userdata import UserData

_HERE = Path(__file__).resolve().parent
BOOT_SCRIPT = _HERE / "_boot.py"
INIT_SCRIPT = _HERE / "init.sh"
HOST_PYTHON = "/usr/bin/python3"
STOP_TIMEOUT = 10.0


@dataclass
class Record:
    """What an instance is, independent of whether it runs."""

    id: str
    ip: str
    port: int
    user: str
    layers: list[str]
    hostname: str
    listen_port: int = 0  # where sshd listens, when port is forwarded there (0: port itself)

    @property
    def sshd_port(self) -> int:
        return self.listen_port or self.port

    def port_map(self, state_dir: Path) -> PortMap | None:
        return PortMap(state_dir, self.port) if self.sshd_port != self.port else None


class Instance:
    """An instance's files and, while it runs, its namespace process."""

    def __init__(self, state_dir: Path, instance_id: str) -> None:
        self.state_dir = state_dir
        self.id = instance_id
        self.dir = state_dir / "instances" / instance_id
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def record(self) -> Record:
        try:
            return Record(**json.loads((self.dir / "record.json").read_text()))
        except FileNotFoundError:
            raise RuntimeFailure(f"Instance {self.id} does not exist in the local cloud runtime.") from None

    def exists(self) -> bool:
        return (self.dir / "record.json").is_file()

    def create(self, record: Record, authorized_keys: list[str], user_data: UserData) -> None:
        for sub in ("upper", "upper-usr", "work-root", "work-usr", "merged", "seed", "connect"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("upper", "upper-usr", "connect"):
            os.chmod(self.dir / sub, 0o755)
        seed = self.dir / "seed"
        keys = [key.strip() for key in [*authorized_keys, *user_data.authorized_keys] if key.strip()]
        (seed / "authorized_keys").write_text("".join(f"{key}\n" for key in keys))
        if user_data.host_keys:
            (seed / "host_keys").mkdir()
            for name, content in user_data.host_keys.items():
                path = seed / "host_keys" / name
                path.write_text(content)
                os.chmod(path, 0o600 if not name.endswith(".pub") else 0o644)
        if user_data.script is not None:
            (seed / "user-script").write_bytes(user_data.script)
        tmp = self.dir / "record.json.tmp"
        tmp.write_text(json.dumps(asdict(record)))
        tmp.replace(self.dir / "record.json")

    def boot(self, store_root: Path) -> None:
        """Start the namespaces and the boot; returns before sshd listens."""
        record = self.record
        stack = list(reversed(record.layers))  # overlayfs wants the top layer first
        rel_store = os.path.relpath(store_root, self.state_dir)
        root_lower = ":".join(f"{rel_store}/{layer}" for layer in stack)
        usr_lower = ":".join(
            [f"{rel_store}/{layer}/usr" for layer in stack if (store_root / layer / "usr").is_dir()] + ["/usr"]
        )
        shutil.copyfile(INIT_SCRIPT, self.dir / "seed" / "init.sh")
        for stale in ("pid1", "process.json"):
            (self.dir / stale).unlink(missing_ok=True)
        config = {
            "state_dir": str(self.state_dir),
            "pid_file": str(self.dir / "pid1"),
            "merged": str(self.dir / "merged"),
            "root_lower": root_lower,
            "root_upper": str(self.dir / "upper"),
            "root_work": str(self.dir / "work-root"),
            "usr_lower": usr_lower,
            "usr_upper": str(self.dir / "upper-usr"),
            "usr_work": str(self.dir / "work-usr"),
            "seed": str(self.dir / "seed"),
            "connect": str(self.dir / "connect"),
            "sshd_log": str(self.dir / "sshd.log"),
            "console": str(self.dir / "console.log"),
            "hostname": record.hostname,
            "init_env": {"id": record.id, "ip": record.ip, "port": record.sshd_port, "user": record.user},
        }
        (self.dir / "boot.json").write_text(json.dumps(config))
        command = [
            "/usr/bin/unshare", "--mount", "--pid", "--uts", "--ipc", "--fork", "--kill-child",
            "--propagation", "private", HOST_PYTHON, "-I", "-S", str(BOOT_SCRIPT), str(self.dir / "boot.json"),
        ]
        with (self.dir / "runtime.log").open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.state_dir, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, start_new_session=True,
            )
        started = procs.start_time(self._process.pid)
        (self.dir / "process.json").write_text(json.dumps({"pid": self._process.pid, "start": started}))
        port_map = record.port_map(self.state_dir)
        if port_map is not None:
            port_map.add(record.ip, record.sshd_port)

    def _processes(self) -> tuple[int | None, int | None, int | None]:
        """(unshare pid, its start time, namespace init pid) of the running boot, as far as they exist."""
        try:
            info = json.loads((self.dir / "process.json").read_text())
        except (OSError, ValueError):
            return None, None, None
        pid, started = int(info["pid"]), info.get("start")
        if not procs.alive(pid, started):
            return None, None, None
        try:
            init = int((self.dir / "pid1").read_text())
        except (OSError, ValueError):
            init = None
        if init is not None and procs.parent(init) != pid:
            init = None
        return pid, started, init

    def running(self) -> bool:
        pid, _started, _init = self._processes()
        return pid is not None

    def halt(self) -> None:
        """Kill every process of the instance; its mounts and namespaces go with the last of them."""
        pid, started, init = self._processes()
        if pid is not None:
            init_started = procs.start_time(init) if init else None
            # SIGKILL to the namespace's init takes the whole pid namespace down with it.
            if init:
                procs.kill(init, init_started)
            else:
                procs.kill(pid, started)
            if self._process is not None and self._process.pid == pid:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(STOP_TIMEOUT)
            if not procs.wait_gone(pid, started, STOP_TIMEOUT):
                procs.kill(pid, started)
                procs.wait_gone(pid, started, STOP_TIMEOUT)
            if init is not None and not procs.wait_gone(init, init_started, STOP_TIMEOUT):
                raise RuntimeFailure(f"Instance {self.id} did not stop within {STOP_TIMEOUT:.0f} seconds.")
        elif self._process is not None:
            self._process.poll()
        self._process = None
        for stale in ("pid1", "process.json"):
            (self.dir / stale).unlink(missing_ok=True)
        port_map = self.record.port_map(self.state_dir) if self.exists() else None
        if port_map is not None:
            port_map.remove(self.record.ip)

    def is_ready(self, timeout: float = 5.0) -> bool:
        """True when sshd on the instance's address answers with an SSH banner."""
        if not self.running():
            return False
        record = self.record
        try:
            with socket.create_connection((record.ip, record.port), timeout=timeout) as conn:
                conn.settimeout(timeout)
                return conn.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            # sshd re-executes itself for every connection: on a busy host its banner can take seconds.
            if self.is_ready(timeout=min(5.0, max(0.05, deadline - time.monotonic()))):
                return True
            if time.monotonic() >= deadline or not self.running():
                return False
            time.sleep(0.02)

    def capture_into(self, staged: Path) -> None:
        """Copy the instance's writable layers into staged as one layer tree (usr/ from its own upper)."""
        copy_tree(self.dir / "upper", staged, skip=frozenset({"usr"}))
        (staged / "usr").mkdir()
        copy_tree(self.dir / "upper-usr", staged / "usr")

    def add_connect_key(self, user: str, public_key: str, ttl: float) -> None:
        if not user or "/" in user or user.startswith("."):
            raise RuntimeFailure(f"{user!r} is not a user name.")
        key = " ".join(public_key.split())
        if not key.startswith(("ssh-", "ecdsa-", "sk-")):
            raise RuntimeFailure("The Instance Connect key is not an OpenSSH public key.")
        now = time.time()
        path = self.dir / "connect" / user
        lines = []
        if path.exists():
            for line in path.read_text().splitlines():
                expiry = line.partition(" ")[0]
                if expiry.isdigit() and int(expiry) > now:
                    lines.append(line)
        lines.append(f"{int(now + ttl)} {key}")
        tmp = path.with_name(f".{user}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines))
        os.chmod(tmp, 0o644)
        tmp.replace(path)

    def memory(self) -> int:
        """Proportional memory of every process of the instance (the namespace's and the host-side unshare)."""
        pid, _started, init = self._processes()
        if pid is None:
            return 0
        members = procs.namespace_members(init) if init else []
        return procs.proportional_memory([pid, *members])

    def remove(self) -> None:
        remove_tree(self.dir)
