# SPDX-License-Identifier: GPL-3.0-or-later
"""The control endpoint (HTTP JSON under /_localcloud/ on the API port) and its client."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from localcloud.settings import Settings, SettingsError

CONTROL_PREFIX = "/_localcloud/"


def _json(status: int, data: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], json.dumps(data, sort_keys=True).encode()


def handle_control(
    method: str, path: str, body: bytes, settings: Settings, views: dict[str, Callable[[], Any]]
) -> tuple[int, list[tuple[str, str]], bytes]:
    """GET a view (health, layers); GET settings; POST/PATCH settings merges; PUT resets then merges."""
    name = path[len(CONTROL_PREFIX) :].strip("/")
    if name in views and method == "GET":
        return _json(200, views[name]())
    if name != "settings":
        return _json(404, {"error": f"no control resource {path}"})
    if method == "GET":
        return _json(200, settings.snapshot())
    if method not in ("POST", "PATCH", "PUT"):
        return _json(405, {"error": f"{method} is not allowed on {path}"})
    try:
        changes = json.loads(body or b"{}")
        if not isinstance(changes, dict):
            raise SettingsError("the settings document must be a JSON object")
        result = settings.replace(changes) if method == "PUT" else settings.update(changes)
    except (ValueError, SettingsError) as error:
        return _json(400, {"error": str(error)})
    return _json(200, result)


class ControlError(RuntimeError):
    """The control endpoint refused a request."""


class ControlClient:
    """Reads and changes a running local cloud's settings."""

    def __init__(self, endpoint_url: str, timeout: float = 10.0) -> None:
        self.base = endpoint_url.rstrip("/") + CONTROL_PREFIX
        self.timeout = timeout

    def _call(self, method: str, name: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + name, data=payload, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - loopback URL
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}").get("error", str(error))
            raise ControlError(detail) from error

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def layers(self) -> dict[str, Any]:
        """Layers images, snapshots and instances keep (id -> bytes), and bytes freed so far."""
        return self._call("GET", "layers")

    def settings(self) -> dict[str, Any]:
        return self._call("GET", "settings")

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merges `changes` into the current settings."""
        return self._call("POST", "settings", changes)

    def replace_settings(self, data: dict[str, Any]) -> dict[str, Any]:
        """Resets to the defaults, then applies `data`."""
        return self._call("PUT", "settings", data)

    def reset(self) -> dict[str, Any]:
        return self.replace_settings({})
