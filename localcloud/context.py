# SPDX-License-Identifier: GPL-3.0-or-later
"""Everything the EC2 behaviours share: the runtime, the settings and the layer book."""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localcloud.settings import Settings
from localcloud.state import LayerBook

LOG = logging.getLogger("localcloud")

# The base image looks like a vendor's public image: another owner, an "amazon" alias.
BASE_IMAGE_OWNER_ID = "136693071363"
BASE_IMAGE_OWNER_ALIAS = "amazon"
BASE_IMAGE_PARAMETER = "/aws/service/bakery/base/latest"


@dataclass
class CloudContext:
    runtime: Any
    settings: Settings
    base_layer: str
    base_image_name: str
    book: LayerBook = field(default_factory=LayerBook)
    # held while a layer is captured and registered, and while unreferenced layers are freed
    layers_lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    # (region, ClientToken) -> image id, so a retried CopyImage answers the first copy
    copy_tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def base_image_id(self, region: str) -> str:
        """Stable per region and base layer, so a restart serves the same id."""
        digest = hashlib.sha256(f"{self.base_layer}:{region}".encode()).hexdigest()
        return "ami-" + digest[:17]

    freed_bytes: int = 0

    def release_unreferenced(self) -> int:
        with self.layers_lock:
            referenced = self.book.referenced_layers() | {self.base_layer}
            freed = int(self.runtime.release_unreferenced(referenced))
            self.freed_bytes += freed
            return freed

    def layers_view(self) -> dict[str, Any]:
        with self.layers_lock:
            referenced = sorted(self.book.referenced_layers() | {self.base_layer})
            return {
                "layers": {layer: int(self.runtime.layer_size(layer)) for layer in referenced},
                "freed_bytes": self.freed_bytes,
            }

    def wait_latency(self, latency: Callable[[], float], started: float) -> None:
        """Sleeps until `latency()` seconds have passed since `started`; re-read, so a change applies at once."""
        while not self.stopping.is_set():
            rest = latency() - (time.monotonic() - started)
            if rest <= 0:
                return
            time.sleep(min(rest, 0.2))

    def spawn(self, name: str, work: Callable[[], None]) -> None:
        """Runs a transition in the background, logging instead of losing its failure."""

        def run() -> None:
            try:
                work()
            except Exception:  # noqa: BLE001 - a background transition must not die silently
                if not self.stopping.is_set():
                    LOG.exception("background task %s failed", name)

        threading.Thread(target=run, name=name, daemon=True).start()
