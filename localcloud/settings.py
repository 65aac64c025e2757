# SPDX-License-Identifier: GPL-3.0-or-later
"""Latency and fault settings: set at start, changed while running through the control endpoint."""
from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any

# Seconds each transition takes at least; the instance transitions also wait for the runtime.
DEFAULT_SETTINGS: dict[str, Any] = {
    "latency": {
        "instance_pending": 0.0,
        "instance_stopping": 0.0,
        "instance_shutting_down": 0.0,
        "image_pending": 0.0,
        "copy_pending": 0.0,
        # region -> seconds; overrides copy_pending for copies into that region
        "copy_pending_regions": {},
        # how long a key pushed by EC2 Instance Connect is accepted (60 s on AWS)
        "instance_connect_key_ttl": 60.0,
        # added to every API call (control calls excepted), as a network round trip to AWS costs
        "api_call": 0.0,
    },
    "faults": {
        # share (0..1) of EC2 calls answered RequestLimitExceeded
        "throttle_rate": 0.0,
        # restrict throttling to these actions (empty: every EC2 action)
        "throttle_actions": [],
        # [{"action": "CreateImage", "code": "InternalError", "message": "...",
        #   "status": 500, "times": 1 | null (always), "region": null | "eu-west-1"}]
        "action_errors": [],
        # region -> "api" (CopyImage into it answers an error) or "state" (the copy ends "failed")
        "copy_image_fail_regions": {},
    },
}


class SettingsError(ValueError):
    """Raised for settings that do not fit the schema."""


def _merge(base: dict[str, Any], update: dict[str, Any], path: str = "") -> None:
    for key, value in update.items():
        if key not in base:
            raise SettingsError(f"unknown setting {path}{key}")
        if isinstance(base[key], dict) and key not in ("copy_pending_regions", "copy_image_fail_regions"):
            if not isinstance(value, dict):
                raise SettingsError(f"setting {path}{key} must be an object")
            _merge(base[key], value, f"{path}{key}.")
        else:
            base[key] = value


def _validate(data: dict[str, Any]) -> None:
    for key, value in data["latency"].items():
        if key == "copy_pending_regions":
            if not isinstance(value, dict) or not all(isinstance(v, (int, float)) for v in value.values()):
                raise SettingsError("latency.copy_pending_regions maps region names to seconds")
        elif not isinstance(value, (int, float)) or value < 0:
            raise SettingsError(f"latency.{key} must be a number of seconds >= 0")
    faults = data["faults"]
    rate = faults["throttle_rate"]
    if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise SettingsError("faults.throttle_rate must be between 0 and 1")
    for rule in faults["action_errors"]:
        if not isinstance(rule, dict) or not rule.get("action") or not rule.get("code"):
            raise SettingsError("each faults.action_errors entry needs an action and a code")
    for region, mode in faults["copy_image_fail_regions"].items():
        if mode not in ("api", "state"):
            raise SettingsError(f"faults.copy_image_fail_regions[{region}] must be 'api' or 'state'")


class Settings:
    """Thread-safe holder of the current settings document."""

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._data = copy.deepcopy(DEFAULT_SETTINGS)
        if initial:
            self.update(initial)

    @classmethod
    def from_file(cls, path: Path) -> Settings:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._data)

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merges `changes` in (validated as a whole) and returns the new settings."""
        with self._lock:
            candidate = copy.deepcopy(self._data)
            _merge(candidate, changes)
            _validate(candidate)
            self._data = candidate
            return copy.deepcopy(candidate)

    def replace(self, data: dict[str, Any]) -> dict[str, Any]:
        """Resets to the defaults, then applies `data`."""
        with self._lock:
            candidate = copy.deepcopy(DEFAULT_SETTINGS)
            _merge(candidate, data)
            _validate(candidate)
            self._data = candidate
            return copy.deepcopy(candidate)

    def latency(self, name: str) -> float:
        with self._lock:
            return float(self._data["latency"][name])

    def copy_latency(self, region: str) -> float:
        with self._lock:
            latency = self._data["latency"]
            return float(latency["copy_pending_regions"].get(region, latency["copy_pending"]))

    def copy_failure(self, region: str) -> str | None:
        with self._lock:
            return self._data["faults"]["copy_image_fail_regions"].get(region)

    def take_action_error(self, action: str, region: str) -> dict[str, Any] | None:
        """The error rule that applies to this call, consuming one use of a counted rule."""
        with self._lock:
            for rule in self._data["faults"]["action_errors"]:
                if rule["action"] != action or rule.get("region") not in (None, region):
                    continue
                times = rule.get("times")
                if times is None:
                    return dict(rule)
                if times > 0:
                    rule["times"] = times - 1
                    return dict(rule)
            return None

    def throttle_share(self, action: str) -> float:
        """The share of calls to this action to answer RequestLimitExceeded."""
        with self._lock:
            faults = self._data["faults"]
            wanted = faults["throttle_actions"]
            return float(faults["throttle_rate"]) if not wanted or action in wanted else 0.0
