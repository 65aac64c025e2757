# SPDX-License-Identifier: GPL-3.0-or-later
"""The request log: one JSON line per API call, for tests and benchmarks to count calls."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOG_NAME = "requests.jsonl"


class RequestLog:
    """Appends entries; safe to call from the server's request threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(
        self,
        *,
        region: str,
        service: str,
        action: str,
        status: int,
        error_code: str | None,
        injected: bool,
        duration: float,
    ) -> None:
        entry = {
            "time": round(time.time(), 6),
            "region": region,
            "service": service,
            "action": action,
            "status": status,
            "outcome": "injected" if injected else ("ok" if status < 400 else "error"),
            "error_code": error_code,
            "duration": round(duration, 6),
        }
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)


def read_requests(path: Path, since: float | None = None) -> Iterator[dict[str, Any]]:
    """Entries of a request log (or of `<state dir>/requests.jsonl`), oldest first."""
    if path.is_dir():
        path = path / LOG_NAME
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            entry = json.loads(line)
            if since is None or entry["time"] >= since:
                yield entry


def count_requests(
    path: Path,
    *,
    action: str | None = None,
    service: str | None = None,
    region: str | None = None,
    outcome: str | None = None,
    since: float | None = None,
) -> int:
    """How many logged calls match every given criterion."""
    return sum(
        1
        for entry in read_requests(path, since)
        if (action is None or entry["action"] == action)
        and (service is None or entry["service"] == service)
        and (region is None or entry["region"] == region)
        and (outcome is None or entry["outcome"] == outcome)
    )


def count_by_action(path: Path, since: float | None = None) -> Counter[str]:
    """Calls per action name."""
    return Counter(entry["action"] for entry in read_requests(path, since))
