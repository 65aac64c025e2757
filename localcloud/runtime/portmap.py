# SPDX-License-Identifier: GPL-3.0-or-later
"""Port 22 on instance addresses when a host service already holds port 22 on every address.

A listener on 0.0.0.0:22 (the host's own sshd, on most machines) keeps any other socket from
binding 127.x.y.z:22. Then each instance's sshd listens on another port, and an nftables
nat rule in the output hook (where all loopback traffic passes) sends <address>:22 there,
so clients still reach every instance on port 22. One table per state directory; shutdown
removes it whole.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from localcloud.runtime.errors import RuntimeFailure

NFT = "/usr/sbin/nft"
_CHAIN = "output"


def table_name(state_dir: Path) -> str:
    return "localcloud_" + hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]


def _nft(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([NFT, *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeFailure(f"nft {' '.join(args)} failed: {result.stderr.strip() or result.returncode}.")
    return result


class PortMap:
    """nftables rules sending <address>:<port> to <address>:<listen_port> for each running instance."""

    def __init__(self, state_dir: Path, port: int) -> None:
        self.table = table_name(state_dir)
        self.port = port

    def add(self, address: str, listen_port: int) -> None:
        self.remove(address)
        _nft("add", "table", "ip", self.table)
        _nft("add", "chain", "ip", self.table, _CHAIN, "{ type nat hook output priority -100 ; }")
        _nft("add", "rule", "ip", self.table, _CHAIN, "ip", "daddr", address, "tcp", "dport", str(self.port),
             "dnat", "to", f"{address}:{listen_port}", "comment", f'"{address}"')

    def remove(self, address: str) -> None:
        listing = _nft("-a", "list", "chain", "ip", self.table, _CHAIN, check=False)
        if listing.returncode != 0:
            return
        for match in re.finditer(rf'comment "{re.escape(address)}" # handle (\d+)', listing.stdout):
            _nft("delete", "rule", "ip", self.table, _CHAIN, "handle", match.group(1), check=False)

    def clear(self) -> None:
        _nft("delete", "table", "ip", self.table, check=False)

    def exists(self) -> bool:
        return _nft("list", "table", "ip", self.table, check=False).returncode == 0


def usable() -> bool:
    """True when nft is installed and the kernel answers it."""
    try:
        return _nft("list", "tables", check=False).returncode == 0
    except FileNotFoundError:
        return False
