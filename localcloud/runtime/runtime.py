# SPDX-License-Identifier: GPL-3.0-or-later
"""The instance runtime the local cloud's EC2 behaviours drive."""
from __future__ import annotations

import re
import threading
from pathlib import Path

from localcloud.runtime import base, console, hostcheck, netaddr, portmap
from localcloud.runtime.errors import RuntimeFailure
from localcloud.runtime.instance import Instance, Record
from localcloud.runtime.keypool import KeyPool
from localcloud.runtime.layers import LayerStore, remove_tree
from localcloud.runtime.userdata import parse as parse_user_data

_INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class Runtime:
    """Real instances (overlayfs + namespaces + OpenSSH sshd) with all state under state_dir.

    Thread-safe: each instance's transitions are serialised, different instances proceed in parallel.
    """

    def __init__(self, state_dir: Path, *, ssh_port: int = 22) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.ssh_port = ssh_port
        (self.state_dir / "instances").mkdir(parents=True, exist_ok=True)
        self.store = LayerStore(self.state_dir / "layers")
        self.keypool = KeyPool(self.state_dir / "keypool")
        self._lock = threading.Lock()
        self._instance_locks: dict[str, threading.RLock] = {}
        self._instances: dict[str, Instance] = {}
        self._listen_port: int | None = None

    # -- host and images -------------------------------------------------------------------

    def check_host(self) -> None:
        hostcheck.check_host(self.state_dir, self.ssh_port)

    def ensure_base_layer(self) -> str:
        self.keypool.refill()
        with self._lock:
            self.store.discard_staging()
            return base.ensure_base_layer(self.store, self.state_dir / "base-layer.json")

    def layer_size(self, layer_id: str) -> int:
        return self.store.size(layer_id)

    def release_unreferenced(self, referenced: set[str]) -> int:
        """Delete layers nobody refers to (the base and layers under existing instances always count)."""
        with self._lock:
            keep = set(referenced)
            keep.update(layer for record in self._records() for layer in record.layers)
            base_marker = self.state_dir / "base-layer.json"
            if base_marker.exists():
                keep.add(base.ensure_base_layer(self.store, base_marker))
            return sum(self.store.remove(layer) for layer in self.store.ids() if layer not in keep)

    # -- instance lifecycle ------------------------------------------------------------------

    def launch(self, instance_id: str, layers: list[str], *, user: str = base.DEFAULT_USER,
               authorized_keys: list[str], user_data: bytes | None = None) -> str:
        """Create and boot an instance over the layer stack (bottom first); returns its loopback address."""
        if not _INSTANCE_ID.match(instance_id):
            raise RuntimeFailure(f"{instance_id!r} is not a usable instance id.")
        if not _USER.match(user):
            raise RuntimeFailure(f"{user!r} is not a usable user name.")
        if not layers:
            raise RuntimeFailure(f"Instance {instance_id} needs at least one layer (the base layer).")
        for layer in layers:
            self.store.path(layer)
        parsed = parse_user_data(user_data)
        with self._lock:
            instance = Instance(self.state_dir, instance_id)
            if instance.exists():
                raise RuntimeFailure(f"Instance {instance_id} already exists.")
            if self._listen_port is None:
                self._listen_port = netaddr.listen_port_for(self.ssh_port)
            taken = [record.ip for record in self._records()]
            ip = netaddr.allocate(self.state_dir, taken, self._listen_port)
            record = Record(id=instance_id, ip=ip, port=self.ssh_port, user=user, layers=list(layers),
                            hostname="ip-" + ip.replace(".", "-"), listen_port=self._listen_port)
            if "ssh_host_rsa_key" not in parsed.host_keys:
                pair = self.keypool.take(f"root@{record.hostname}")
                if pair is not None:
                    parsed.host_keys["ssh_host_rsa_key"], parsed.host_keys["ssh_host_rsa_key.pub"] = pair
            try:
                instance.create(record, authorized_keys, parsed)
            except BaseException:
                instance.remove()
                raise
            self._instances[instance_id] = instance
        with self._locked(instance_id):
            try:
                instance.boot(self.store.root)
            except BaseException:
                instance.halt()
                instance.remove()
                with self._lock:
                    self._instances.pop(instance_id, None)
                raise
        return ip

    def wait_ready(self, instance_id: str, timeout: float) -> bool:
        """True once sshd answers; False on timeout, a failed boot, or an instance terminated meanwhile."""
        try:
            return self._instance(instance_id).wait_ready(timeout)
        except RuntimeFailure:
            return False

    def is_ready(self, instance_id: str) -> bool:
        try:
            return self._instance(instance_id).is_ready()
        except RuntimeFailure:
            return False

    def address(self, instance_id: str) -> str:
        return self._instance(instance_id).record.ip

    def stop(self, instance_id: str) -> None:
        with self._locked(instance_id):
            self._instance(instance_id).halt()

    def start(self, instance_id: str) -> None:
        with self._locked(instance_id):
            instance = self._instance(instance_id)
            if instance.running():
                return
            record = instance.record
            if not netaddr.port_is_free(record.ip, record.sshd_port):
                raise RuntimeFailure(
                    f"{record.ip}:{record.sshd_port} of instance {instance_id} is taken by another process."
                )
            instance.boot(self.store.root)

    def reboot(self, instance_id: str) -> None:
        with self._locked(instance_id):
            instance = self._instance(instance_id)
            instance.halt()
            instance.boot(self.store.root)

    def terminate(self, instance_id: str) -> None:
        with self._locked(instance_id):
            instance = self._instance(instance_id)
            instance.halt()
            instance.remove()
        with self._lock:
            self._instances.pop(instance_id, None)
            self._instance_locks.pop(instance_id, None)

    def capture(self, instance_id: str) -> str:
        """Store the instance's changes as a layer; an image made of its layers plus this one sees them all."""
        with self._locked(instance_id):
            instance = self._instance(instance_id)
            staged = self.store.staging()
            try:
                instance.capture_into(staged)
            except BaseException:
                remove_tree(staged)
                raise
            return self.store.commit(staged)

    def console_output(self, instance_id: str) -> str:
        return console.read_console(self._instance(instance_id).dir / "console.log")

    def add_temporary_key(self, instance_id: str, user: str, public_key: str, ttl: float = 60.0) -> None:
        """Let public_key log in as user for ttl seconds (EC2 Instance Connect)."""
        with self._locked(instance_id):
            self._instance(instance_id).add_connect_key(user, public_key, ttl)

    def instance_memory(self, instance_id: str) -> int:
        """Proportional set size, in bytes, of all the instance's processes."""
        return self._instance(instance_id).memory()

    def instance_ids(self) -> list[str]:
        return [instance.id for instance in self._all_instances()]

    def shutdown(self) -> None:
        """Stop every instance under state_dir, including ones another process started."""
        self.keypool.close()
        for instance in self._all_instances():
            with self._locked(instance.id):
                instance.halt()
        if portmap.usable():
            portmap.PortMap(self.state_dir, self.ssh_port).clear()

    # -- helpers -------------------------------------------------------------------------------

    def _instance(self, instance_id: str) -> Instance:
        with self._lock:
            instance = self._instances.get(instance_id)
            if instance is None:
                instance = Instance(self.state_dir, instance_id)
                if not _INSTANCE_ID.match(instance_id) or not instance.exists():
                    raise RuntimeFailure(f"Instance {instance_id} does not exist in the local cloud runtime.")
                self._instances[instance_id] = instance
            return instance

    def _all_instances(self) -> list[Instance]:
        found = []
        for path in sorted((self.state_dir / "instances").iterdir()):
            if (path / "record.json").is_file():
                found.append(self._instances.get(path.name) or Instance(self.state_dir, path.name))
        return found

    def _records(self) -> list[Record]:
        """Records of the instances that exist; one being terminated meanwhile is skipped."""
        records = []
        for instance in self._all_instances():
            try:
                records.append(instance.record)
            except RuntimeFailure:
                continue
        return records

    def _locked(self, instance_id: str) -> threading.RLock:
        with self._lock:
            return self._instance_locks.setdefault(instance_id, threading.RLock())
