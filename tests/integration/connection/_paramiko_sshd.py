# SPDX-License-Identifier: GPL-3.0-or-later
"""A real OpenSSH sshd on a loopback address, with its own config, host keys and log."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
# Sessions side by side (pytest-xdist workers; BAKERY_SSHD_SLOT for a run beside another) each
# get their own users, sudoers file and loopback addresses: none removes what another still uses.
SLOT = int(os.environ.get("BAKERY_SSHD_SLOT", "0")) + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
_SUFFIX = str(SLOT) if SLOT else ""
USER = f"bakery-test{_SUFFIX}"
OTHER_USER = f"bakery-pw{_SUFFIX}"  # sudo to it needs USER's password; su to it needs its own
PASSWORD = "b4kery-Test-pw"
# This session's loopback addresses: NET.<n>.<m>.
NET = f"127.{66 + SLOT}"


SUDOERS = Path(f"/etc/sudoers.d/bakery-test{_SUFFIX}")


def ensure_users() -> list[str]:
    """Create the test users (as root); return the ones created, for remove_users."""
    created = []
    for user in (USER, OTHER_USER):
        if subprocess.run(["id", user], capture_output=True, check=False).returncode != 0:
            subprocess.run(["useradd", "--system", "--create-home", "--shell", "/bin/bash", user], check=True)
            created.append(user)
        subprocess.run(["chpasswd"], input=f"{user}:{PASSWORD}\n", text=True, check=True)
    SUDOERS.write_text(f"{USER} ALL=(root) NOPASSWD: ALL\n{USER} ALL=({OTHER_USER}) ALL\n")
    SUDOERS.chmod(0o440)
    return created


def remove_users(created: list[str]) -> None:
    if not created:
        return  # someone else's users (another test session or benchmark): theirs to remove
    SUDOERS.unlink(missing_ok=True)
    for user in created:
        # commands a test abandoned (the become timeout's slow sudo) would keep userdel from working
        found = subprocess.run(["id", "-u", user], capture_output=True, text=True, check=False)
        if found.returncode != 0:
            continue
        for pid in _processes_of(int(found.stdout)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["userdel", "--remove", user], capture_output=True, check=False)


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
            if int(uids[0]) == uid:
                found.append(int(entry))
    return found


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def keygen(path: Path, key_type: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "", "-f", str(path)], check=True)
    return path


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


class Sshd:
    def __init__(self, workdir: Path, address: str, authorized_keys: Path) -> None:
        self.workdir = workdir
        self.address = address
        self.port = free_port(address)
        self.authorized_keys = authorized_keys
        workdir.mkdir(parents=True, exist_ok=True)
        self.host_keys = [keygen(workdir / "host_ed25519"), keygen(workdir / "host_rsa", "rsa")]
        self.log = workdir / "sshd.log"
        self.config = workdir / "sshd_config"
        self.config.write_text("\n".join([
            f"ListenAddress {address}:{self.port}",
            *[f"HostKey {key}" for key in self.host_keys],
            f"PidFile {workdir / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized_keys}",
            "StrictModes no",
            "UsePAM no",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            f"AllowUsers {USER}",
            "AllowTcpForwarding yes",
            "MaxSessions 100",
            "MaxStartups 100",
            "LogLevel VERBOSE",
            "Subsystem sftp /usr/lib/openssh/sftp-server",
            "",
        ]))
        self.process: subprocess.Popen[bytes] | None = None

    def host_key_line(self, index: int = 0) -> str:
        """"keytype base64" of one host key."""
        return " ".join(Path(f"{self.host_keys[index]}.pub").read_text().split()[:2])

    def known_hosts_line(self, index: int = 0) -> str:
        return f"[{self.address}]:{self.port} {self.host_key_line(index)}\n"

    def fingerprint(self, index: int = 0) -> str:
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{self.host_keys[index]}.pub"],
                             check=True, capture_output=True, text=True).stdout
        return out.split()[1]

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()}")
            try:
                socket.create_connection((self.address, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.address}:{self.port}")

    def stop(self) -> None:
        """Stop the listener and every session it forked, as a host reboot would."""
        if self.process is None:
            return
        sessions = _children(self.process.pid)
        for pid in sessions + [grand for child in sessions for grand in _children(child)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None

    def accepted(self) -> int:
        """How many SSH logins sshd accepted (VERBOSE logs one line each)."""
        return sum(1 for line in self.log.read_text(errors="replace").splitlines() if line.startswith(("Accepted publickey", "Accepted password")))


def control_processes(control_dir: Path) -> list[int]:
    """Control processes whose socket lives in control_dir (found by their command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"_ssh_control" in cmdline and str(control_dir).encode() in cmdline:
                found.append(int(entry))
    return found


def stop_control_processes(control_dir: Path) -> None:
    for pid in control_processes(control_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
