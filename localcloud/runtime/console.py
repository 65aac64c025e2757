# SPDX-License-Identifier: GPL-3.0-or-later
"""An instance's console: what its boots printed, as GetConsoleOutput returns it."""
from __future__ import annotations

from pathlib import Path

# EC2 keeps the most recent 64 KiB of console output.
CONSOLE_LIMIT = 64 * 1024


def read_console(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - CONSOLE_LIMIT))
            data = handle.read()
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", errors="replace")


def host_keys_from_console(text: str) -> list[str]:
    """The public host keys between the cloud-init markers (the last block printed)."""
    begin, end = "-----BEGIN SSH HOST KEY KEYS-----", "-----END SSH HOST KEY KEYS-----"
    start = text.rfind(begin)
    if start < 0:
        return []
    stop = text.find(end, start)
    block = text[start + len(begin): stop if stop >= 0 else len(text)]
    return [line.strip() for line in block.splitlines() if line.strip()]
