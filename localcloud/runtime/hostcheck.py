# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks that this host can run instances before anything is built."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

from localcloud.runtime import netaddr, portmap
from localcloud.runtime.errors import RuntimeFailure

# Host programs the runtime itself runs, and programs every instance needs from /usr.
REQUIRED_PROGRAMS: dict[str, str] = {
    "/usr/bin/unshare": "util-linux",
    "/usr/sbin/sshd": "openssh-server",
    "/usr/bin/ssh-keygen": "openssh-client",
    "/usr/bin/sudo": "sudo",
    "/usr/bin/python3": "python3",
    "/usr/sbin/useradd": "passwd",
}


def check_host(state_dir: Path, ssh_port: int) -> None:
    """Raise RuntimeFailure naming the first thing this host lacks."""
    if os.geteuid() != 0:
        raise RuntimeFailure(
            "The local cloud instance runtime needs root (it mounts overlayfs and creates namespaces "
            "as root; unprivileged user namespaces are not supported), so run it as root."
        )
    if not _overlay_available():
        raise RuntimeFailure("The kernel does not offer overlayfs (modprobe overlay failed), which every instance needs.")
    for program, package in REQUIRED_PROGRAMS.items():
        if not os.access(program, os.X_OK):
            raise RuntimeFailure(f"{program} is missing: install the Debian package {package}.")
    if os.path.realpath("/bin") != "/usr/bin":
        raise RuntimeFailure("The host does not have a merged /usr (/bin is not a link to usr/bin), which the base image needs.")
    forbidden = set(":,\n")
    if forbidden & set(str(state_dir.resolve())):
        raise RuntimeFailure(f"The state directory {state_dir} contains ':' ',' or a newline, which overlayfs options cannot carry.")
    _check_port(ssh_port)
    _check_overlay_upper(state_dir)


def _overlay_available() -> bool:
    if "overlay" in Path("/proc/filesystems").read_text():
        return True
    try:
        subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
    except FileNotFoundError:
        return False
    return "overlay" in Path("/proc/filesystems").read_text()


def _check_port(port: int) -> None:
    # A service on the wildcard address (the host's own sshd, say) blocks this port on every
    # loopback address; nftables can then forward it to another port (see portmap).
    if netaddr.held_on_all_addresses(port) and not portmap.usable():
        raise RuntimeFailure(
            f"TCP port {port} is taken on all addresses by a host service (for example the host's own sshd "
            f"on 0.0.0.0) and nft (Debian package nftables) is not available to forward instance addresses "
            f"around it, so install nftables or bind that service to specific addresses."
        )


def _check_overlay_upper(state_dir: Path) -> None:
    """Mount a tiny overlay (in a throwaway mount namespace) with its upper dir in state_dir and delete a file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    probe = state_dir / f".overlay-probe-{uuid.uuid4().hex}"
    try:
        for sub in ("lower", "upper", "work", "merged"):
            (probe / sub).mkdir(parents=True)
        (probe / "lower" / "file").write_text("probe\n")
        script = (f"mount -t overlay overlay -o lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work,"
                  f"redirect_dir=off,index=off,metacopy=off {probe}/merged && rm {probe}/merged/file")
        result = subprocess.run(["/usr/bin/unshare", "--mount", "/bin/sh", "-c", script],
                                capture_output=True, text=True, check=False)
        whiteout = probe / "upper" / "file"
        if result.returncode != 0 or not stat.S_ISCHR(os.lstat(whiteout).st_mode):
            detail = "mounting an overlay there failed" if result.returncode else "deleting a file left no whiteout"
            raise RuntimeFailure(
                f"overlayfs cannot keep instance changes in {state_dir} ({detail}); "
                f"put the local cloud's state on a local filesystem such as ext4, xfs or tmpfs."
            )
    except FileNotFoundError:
        raise RuntimeFailure(
            f"overlayfs cannot keep instance changes in {state_dir} (deleting a file left no whiteout); "
            f"put the local cloud's state on a local filesystem such as ext4, xfs or tmpfs."
        ) from None
    finally:
        shutil.rmtree(probe, ignore_errors=True)
