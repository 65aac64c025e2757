# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Host key verification: pinned keys, a known_hosts file, and locked atomic recording."""
from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
import struct
import tempfile
import typing as t

# Key types a host may present; the algorithms paramiko negotiates map onto them.
_ALGORITHM_KEY_TYPE = {"rsa-sha2-512": "ssh-rsa", "rsa-sha2-256": "ssh-rsa"}
_BLOCK_MARKERS = ("-----BEGIN", "-----END")


class HostKeyError(Exception):
    """The server's host key is unknown, changed, or does not match the pinned keys."""


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _blob_type(blob: bytes) -> str | None:
    if len(blob) < 4:
        return None
    (size,) = struct.unpack(">I", blob[:4])
    if size > 64 or len(blob) < 4 + size:
        return None
    return blob[4:4 + size].decode("ascii", errors="replace")


def parse_pinned_keys(value: t.Any) -> list[tuple[str, bytes]]:
    """Parse pinned keys: "type base64" strings or known_hosts lines, as a list or one text block.

    A block printed by cloud-init on the console (BEGIN/END marker lines) is accepted as is.
    """
    if value is None:
        return []
    items = value.splitlines() if isinstance(value, str) else [str(v) for v in value]
    keys: list[tuple[str, bytes]] = []
    for item in items:
        for line in item.splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#") or line.strip().startswith(_BLOCK_MARKERS):
                continue
            # "type base64 [comment]" or "hosts type base64 [comment]"
            start = 0 if _looks_like_key_type(fields[0]) else 1
            if len(fields) < start + 2 or not _looks_like_key_type(fields[start]):
                raise ValueError(f"not a host key: {line.strip()!r}")
            try:
                blob = base64.b64decode(fields[start + 1], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"host key {fields[start]} has invalid base64 data") from None
            if _blob_type(blob) != fields[start]:
                raise ValueError(f"host key data does not hold a {fields[start]} key")
            keys.append((fields[start], blob))
    return keys


def _looks_like_key_type(word: str) -> bool:
    return word.startswith(("ssh-", "ecdsa-", "sk-")) and "," not in word


class HostKeyVerifier:
    """Decides whether one server's host key is trusted."""

    def __init__(self, host: str, port: int, checking: bool, known_hosts_file: str | None,
                 pinned: list[tuple[str, bytes]], record: bool) -> None:
        self.host = host
        self.port = port
        self.checking = checking
        self.known_hosts_file = os.path.expanduser(known_hosts_file) if known_hosts_file else None
        self.pinned = pinned
        self.record = record
        self.name = known_hosts_name(host, port)

    def _known_keys(self) -> dict[str, bytes]:
        if not self.known_hosts_file or not os.path.exists(self.known_hosts_file):
            return {}
        # Imported here: the plugin's task workers load this module for parse_pinned_keys only,
        # and must not pay for importing paramiko (only the control process needs it).
        import paramiko

        known = paramiko.HostKeys()
        try:
            known.load(self.known_hosts_file)
        except (OSError, paramiko.SSHException) as exc:
            raise HostKeyError(f"cannot read known_hosts file {self.known_hosts_file}: {exc}") from exc
        entry = known.lookup(self.name)
        return {key_type: key.asbytes() for key_type, key in (entry or {}).items()}

    def trusted_keys(self) -> dict[str, list[bytes]]:
        if self.pinned:
            trusted: dict[str, list[bytes]] = {}
            for key_type, blob in self.pinned:
                trusted.setdefault(key_type, []).append(blob)
            return trusted
        return {key_type: [blob] for key_type, blob in self._known_keys().items()}

    def restrict_algorithms(self, transport: t.Any) -> None:
        """Ask only for key types we can verify, as OpenSSH does for known hosts."""
        trusted = self.trusted_keys()
        if not trusted or not self.checking:
            return
        options = transport.get_security_options()
        wanted = [alg for alg in options.key_types if _ALGORITHM_KEY_TYPE.get(alg, alg) in trusted]
        if wanted:
            options.key_types = wanted

    def verify(self, key_type: str, blob: bytes) -> None:
        trusted = self.trusted_keys()
        if any(blob == known for known in trusted.get(key_type, [])):
            return
        where = f"{self.host} port {self.port}"
        offered = f"{key_type} {fingerprint(blob)}"
        if not self.checking:
            if not trusted and self.record and self.known_hosts_file:
                record_known_host(self.known_hosts_file, self.name, key_type, blob)
            return
        if self.pinned:
            expected = ", ".join(f"{k} {fingerprint(b)}" for k, b in self.pinned)
            raise HostKeyError(
                f"host key of {where} ({offered}) does not match the pinned host keys ({expected}): "
                "possible man-in-the-middle attack, refusing to connect")
        if trusted:
            raise HostKeyError(
                f"host key of {where} has CHANGED (now {offered}; {self.known_hosts_file} "
                f"knows {', '.join(sorted(trusted))}): possible man-in-the-middle attack, refusing to connect")
        raise HostKeyError(
            f"host key of {where} is unknown ({offered}): add it to the known_hosts_file "
            f"({self.known_hosts_file or 'none set'}), pin it with host_keys, or set host_key_checking "
            "to false to accept it")


def record_known_host(path: str, name: str, key_type: str, blob: bytes) -> None:
    """Append one host key to a known_hosts file, under a lock, replacing the file atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    line = f"{name} {key_type} {base64.b64encode(blob).decode()}\n"
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, encoding="utf-8") as current:
                content = current.read()
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            content, mode = "", 0o600
        if line in content.splitlines(True):
            return
        if content and not content.endswith("\n"):
            content += "\n"
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".known_hosts.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(content + line)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
