# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import base64
import re
import subprocess
import threading
from pathlib import Path

import pytest

from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_hostkeys import (
    HostKeyError,
    HostKeyVerifier,
    fingerprint,
    parse_pinned_keys,
    record_known_host,
)


def _ed25519(path: Path) -> tuple[str, bytes]:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    key_type, data = Path(f"{path}.pub").read_text().split()[:2]
    return key_type, base64.b64decode(data)


def test_parse_forms(tmp_path: Path) -> None:
    key_type, blob = _ed25519(tmp_path / "k")
    b64 = base64.b64encode(blob).decode()
    block = f"-----BEGIN SSH HOST KEY KEYS-----\n{key_type} {b64} root@host\n-----END SSH HOST KEY KEYS-----\n"
    assert parse_pinned_keys([f"{key_type} {b64}"]) == [(key_type, blob)]
    assert parse_pinned_keys([f"[10.0.0.1]:22 {key_type} {b64}"]) == [(key_type, blob)]
    assert parse_pinned_keys(block) == [(key_type, blob)]
    assert parse_pinned_keys(None) == []
    with pytest.raises(ValueError, match="invalid base64"):
        parse_pinned_keys([f"{key_type} not*base64"])
    with pytest.raises(ValueError, match="does not hold a ssh-rsa key"):
        parse_pinned_keys([f"ssh-rsa {b64}"])
    with pytest.raises(ValueError, match="not a host key"):
        parse_pinned_keys(["hello"])


def test_verifier_known_hosts(tmp_path: Path) -> None:
    key_type, blob = _ed25519(tmp_path / "a")
    other = _ed25519(tmp_path / "b")[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.9]:2222 {key_type} {base64.b64encode(blob).decode()}\n")
    HostKeyVerifier("127.0.0.9", 2222, True, str(known), [], False).verify(key_type, blob)
    with pytest.raises(HostKeyError, match="has CHANGED .*man-in-the-middle"):
        HostKeyVerifier("127.0.0.9", 2222, True, str(known), [], False).verify(key_type, other)
    with pytest.raises(HostKeyError, match=re.escape(f"is unknown ({key_type} {fingerprint(blob)})")):
        HostKeyVerifier("127.0.0.9", 22, True, str(known), [], False).verify(key_type, blob)
    # checking off: accepted, and known_hosts only written when recording is asked for
    before = known.read_text()
    HostKeyVerifier("127.0.0.10", 22, False, str(known), [], False).verify(key_type, other)
    assert known.read_text() == before
    HostKeyVerifier("127.0.0.10", 22, False, str(known), [], True).verify(key_type, other)
    assert known.read_text() == before + f"127.0.0.10 {key_type} {base64.b64encode(other).decode()}\n"


def test_verifier_pinned(tmp_path: Path) -> None:
    key_type, blob = _ed25519(tmp_path / "a")
    other = _ed25519(tmp_path / "b")[1]
    verifier = HostKeyVerifier("h", 22, True, None, [(key_type, blob)], False)
    verifier.verify(key_type, blob)
    with pytest.raises(HostKeyError, match="does not match the pinned host keys"):
        verifier.verify(key_type, other)


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    blob = _ed25519(tmp_path / "a")[1]
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{tmp_path / 'a'}.pub"],
                         check=True, capture_output=True, text=True).stdout.split()[1]
    assert fingerprint(blob) == out


def test_record_known_host_is_locked_and_atomic(tmp_path: Path) -> None:
    key_type, blob = _ed25519(tmp_path / "a")
    known = tmp_path / "ssh" / "known_hosts"
    known.parent.mkdir()
    known.write_text("# kept\n")
    known.chmod(0o644)
    threads = [threading.Thread(target=record_known_host, args=(str(known), f"host{i}", key_type, blob))
               for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = known.read_text().splitlines()
    assert lines[0] == "# kept"
    assert sorted(lines[1:]) == sorted(f"host{i} {key_type} {base64.b64encode(blob).decode()}" for i in range(16))
    assert oct(known.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in known.parent.iterdir()) == ["known_hosts", "known_hosts.lock"]
    record_known_host(str(known), "host0", key_type, blob)  # already there: not added twice
    assert len(known.read_text().splitlines()) == 17
