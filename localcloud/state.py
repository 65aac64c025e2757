# SPDX-License-Identifier: GPL-3.0-or-later
"""What the API side knows beyond moto: which layers each image, snapshot and instance uses."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class InstanceRecord:
    """An instance the runtime holds; `lock` serialises its transitions."""

    instance_id: str
    region: str
    layers: tuple[str, ...]
    ip: str
    terminated: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class LayerBook:
    """Maps images, snapshots and instances to the layers they keep alive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._images: dict[tuple[str, str], tuple[str, ...]] = {}
        self._snapshots: dict[tuple[str, str], tuple[str, ...]] = {}
        self._instances: dict[str, InstanceRecord] = {}

    def set_image(self, region: str, image_id: str, layers: tuple[str, ...]) -> None:
        with self._lock:
            self._images[(region, image_id)] = layers

    def image_layers(self, region: str, image_id: str) -> tuple[str, ...] | None:
        with self._lock:
            return self._images.get((region, image_id))

    def drop_image(self, region: str, image_id: str) -> None:
        with self._lock:
            self._images.pop((region, image_id), None)

    def set_snapshot(self, region: str, snapshot_id: str, layers: tuple[str, ...]) -> None:
        with self._lock:
            self._snapshots[(region, snapshot_id)] = layers

    def snapshot_layers(self, region: str, snapshot_id: str) -> tuple[str, ...] | None:
        with self._lock:
            return self._snapshots.get((region, snapshot_id))

    def drop_snapshot(self, region: str, snapshot_id: str) -> None:
        with self._lock:
            self._snapshots.pop((region, snapshot_id), None)

    def add_instance(self, record: InstanceRecord) -> None:
        with self._lock:
            self._instances[record.instance_id] = record

    def instance(self, instance_id: str) -> InstanceRecord | None:
        with self._lock:
            return self._instances.get(instance_id)

    def live_instances(self) -> list[InstanceRecord]:
        with self._lock:
            return [r for r in self._instances.values() if not r.terminated]

    def referenced_layers(self) -> set[str]:
        """Every layer that an image, a snapshot or a live instance still needs."""
        with self._lock:
            layers: set[str] = set()
            for chain in (*self._images.values(), *self._snapshots.values()):
                layers.update(chain)
            for record in self._instances.values():
                if not record.terminated:
                    layers.update(record.layers)
            return layers
