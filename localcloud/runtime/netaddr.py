# SPDX-License-Identifier: GPL-3.0-or-later
"""Loopback addresses for instances.

Linux routes all of 127.0.0.0/8 to `lo`, so an instance's sshd can bind its own address
without adding it to the interface. Each state directory draws from its own /16 (derived
from its path) so two local clouds on one host rarely meet; a bind probe settles the rest.
"""
from __future__ import annotations

import hashlib
import ipaddress
import socket
from collections.abc import Iterable
from pathlib import Path

from localcloud.runtime.errors import RuntimeFailure


def subnet_for(state_dir: Path) -> ipaddress.IPv4Network:
    """A /16 inside 127.16.0.0-127.250.255.255, away from the usual 127.0.0.x services."""
    second = 16 + hashlib.sha256(str(state_dir.resolve()).encode()).digest()[0] % 235
    return ipaddress.IPv4Network(f"127.{second}.0.0/16")


def port_is_free(address: str, port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As sshd does: connections of a former listener in TIME_WAIT do not make the port busy.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((address, port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


# Checked for a listener on every address: nothing in the instances' subnets uses it.
PROBE_ADDRESS = "127.255.255.254"
# Where sshd listens when a host service holds the SSH port on every address (see portmap).
FALLBACK_LISTEN_PORTS = (2222, 22222, 20022, 30022)


def held_on_all_addresses(port: int) -> bool:
    return not port_is_free(PROBE_ADDRESS, port)


def listen_port_for(port: int) -> int:
    """The port instances' sshd listens on: port itself, unless something holds it on every address."""
    if not held_on_all_addresses(port):
        return port
    for candidate in FALLBACK_LISTEN_PORTS:
        if not held_on_all_addresses(candidate):
            return candidate
    raise RuntimeFailure(f"Ports {port} and {', '.join(map(str, FALLBACK_LISTEN_PORTS))} are all taken on every address.")


def allocate(state_dir: Path, taken: Iterable[str], port: int) -> str:
    """The first address of this state directory's subnet that no instance holds and nothing listens on."""
    held = set(taken)
    for host in subnet_for(state_dir).hosts():
        address = str(host)
        if address.endswith((".0", ".1", ".255")) or address in held:
            continue
        if port_is_free(address, port):
            return address
    raise RuntimeFailure(f"No free loopback address is left in {subnet_for(state_dir)} for another instance.")
