# SPDX-License-Identifier: GPL-3.0-or-later
"""Fresh RSA host keys made ahead of time.

Generating a 3072-bit RSA key takes one to two seconds of CPU, longer than the whole rest of
a boot; ECDSA and Ed25519 keys take milliseconds. So RSA host keys are generated in the
background (niced) and each new instance takes an unused one: every instance still gets its
own keys, and boot stays well under two seconds.
"""
from __future__ import annotations

import os
import subprocess
import threading
import uuid
from pathlib import Path

RSA_BITS = 3072


class KeyPool:
    """A directory of unused RSA host key pairs, refilled by one background thread."""

    def __init__(self, root: Path, size: int = 8) -> None:
        self.root = root
        self.size = size
        self._lock = threading.Lock()
        self._filling: threading.Thread | None = None
        self._generating: subprocess.Popen[bytes] | None = None
        self._closed = False
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)

    def _ready(self) -> list[Path]:
        return sorted(p for p in self.root.glob("*.key") if p.with_suffix(".pub").exists())

    def take(self, comment: str) -> tuple[str, str] | None:
        """An unused (private key, public line) pair, or None when the pool is empty."""
        with self._lock:
            ready = self._ready()
            if not ready:
                self.refill()
                return None
            private_path = ready[0]
            public_path = private_path.with_suffix(".pub")
            private, public = private_path.read_text(), public_path.read_text()
            private_path.unlink()
            public_path.unlink()
        self.refill()
        key_type, blob = public.split()[:2]
        return private, f"{key_type} {blob} {comment}\n"

    def refill(self) -> None:
        """Top the pool up in the background unless a refill already runs."""
        if self._closed or (self._filling is not None and self._filling.is_alive()):
            return
        self._filling = threading.Thread(target=self._fill, name="localcloud-keypool", daemon=True)
        self._filling.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop refilling and end a key generation under way, so no ssh-keygen outlives the runtime."""
        self._closed = True
        generating = self._generating
        if generating is not None and generating.poll() is None:
            generating.kill()
        if self._filling is not None:
            self._filling.join(timeout)

    def _fill(self) -> None:
        while not self._closed and len(self._ready()) < self.size:
            name = self.root / f".{uuid.uuid4().hex}"
            with subprocess.Popen(
                ["nice", "-n", "10", "/usr/bin/ssh-keygen", "-q", "-t", "rsa", "-b", str(RSA_BITS),
                 "-N", "", "-C", "", "-f", str(name)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ) as process:
                self._generating = process
                if self._closed:
                    process.kill()
                returncode = process.wait()
            self._generating = None
            if returncode != 0:
                for partial in (name, name.with_name(f"{name.name}.pub")):
                    partial.unlink(missing_ok=True)
                return
            stem = uuid.uuid4().hex
            # The public half lands first: a private key without it is not yet "ready".
            name.with_name(f"{name.name}.pub").rename(self.root / f"{stem}.pub")
            name.rename(self.root / f"{stem}.key")
