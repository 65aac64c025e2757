# SPDX-License-Identifier: GPL-3.0-or-later
"""Content-addressed store of filesystem layers (overlayfs lower directories).

A layer is a directory tree in overlayfs format: whiteouts (0/0 character devices) and
opaque directories (trusted.overlay.opaque=y) record deletions. Its id is the SHA-256 of a
manifest of paths, types, modes, owners, xattrs and content, so equal trees share one copy.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from localcloud.runtime.errors import RuntimeFailure

OPAQUE_XATTR = "trusted.overlay.opaque"
# Other overlay xattrs describe one mount's upper dir (origin, impure...); they mean nothing in a layer.
_OVERLAY_XATTR_PREFIX = "trusted.overlay."
_CHUNK = 1 << 20


def _kept_xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    kept: dict[str, bytes] = {}
    for name in sorted(names):
        if name.startswith(_OVERLAY_XATTR_PREFIX) and name != OPAQUE_XATTR:
            continue
        try:
            kept[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return kept


def walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (relative path, lstat) for every entry below root, parents first, sorted."""
    stack = [""]
    while stack:
        rel = stack.pop()
        base = os.path.join(root, rel) if rel else str(root)
        names = sorted(os.listdir(base), reverse=True)
        for name in names:
            child = f"{rel}/{name}" if rel else name
            st = os.lstat(os.path.join(root, child))
            if stat.S_ISDIR(st.st_mode):
                stack.append(child)
        for name in reversed(names):
            child = f"{rel}/{name}" if rel else name
            yield child, os.lstat(os.path.join(root, child))


def tree_digest(root: Path) -> str:
    """SHA-256 over the tree's manifest; modification times do not count."""
    digest = hashlib.sha256()
    top = os.lstat(root)
    digest.update(_manifest_line(root, ".", top).encode())
    for rel, st in sorted(walk(root), key=lambda item: item[0].split("/")):
        digest.update(_manifest_line(root, rel, st).encode())
    return digest.hexdigest()


def _manifest_line(root: Path, rel: str, st: os.stat_result) -> str:
    path = os.path.join(root, rel)
    mode = st.st_mode
    if stat.S_ISREG(mode):
        kind, payload = "f", _file_sha256(path)
    elif stat.S_ISDIR(mode):
        kind, payload = "d", ""
    elif stat.S_ISLNK(mode):
        kind, payload = "l", os.readlink(path)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind, payload = ("c" if stat.S_ISCHR(mode) else "b"), f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    elif stat.S_ISFIFO(mode):
        kind, payload = "p", ""
    else:
        kind, payload = "s", ""
    xattrs = ",".join(f"{k}={v.hex()}" for k, v in _kept_xattrs(path).items())
    return f"{rel!r}\t{kind}\t{stat.S_IMODE(mode):o}\t{st.st_uid}\t{st.st_gid}\t{payload!r}\t{xattrs}\n"


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_tree(src: Path, dst: Path, skip: frozenset[str] = frozenset()) -> None:
    """Copy src into the existing directory dst keeping owners, modes, times, xattrs, devices and hard links.

    Top-level names in skip are left out; sockets are left out (they only live while a process does).
    """
    _copy_meta(str(src), str(dst), os.lstat(src), is_link=False)
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []
    for rel, st in walk(src):
        if rel.split("/", 1)[0] in skip:
            continue
        source, target = os.path.join(src, rel), os.path.join(dst, rel)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(target)
            dirs.append((target, st))
            _copy_meta(source, target, st, is_link=False, times=False)
            continue
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], target)
                continue
            links[key] = target
            shutil.copyfile(source, target, follow_symlinks=False)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            os.mknod(target, mode, st.st_rdev)
        else:
            continue
        _copy_meta(source, target, st, is_link=stat.S_ISLNK(mode))
    for target, st in reversed(dirs):
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    st = os.lstat(src)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_meta(source: str, target: str, st: os.stat_result, *, is_link: bool, times: bool = True) -> None:
    os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
    if not is_link:
        os.chmod(target, stat.S_IMODE(st.st_mode))
    for name, value in _kept_xattrs(source).items():
        with contextlib.suppress(OSError):
            os.setxattr(target, name, value, follow_symlinks=False)
    if times:
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def disk_usage(root: Path) -> int:
    """Bytes the tree occupies on disk, each inode counted once."""
    seen: set[tuple[int, int]] = set()
    top = os.lstat(root)
    total = top.st_blocks * 512
    for _rel, st in walk(root):
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        total += st.st_blocks * 512
    return total


def remove_tree(path: Path) -> None:
    """Delete a tree, including the root-only, mode-000 work directories overlayfs leaves."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


class LayerStore:
    """Layers under one directory, named by their content digest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}  # layers never change, so their sizes do not either
        root.mkdir(parents=True, exist_ok=True)

    def path(self, layer_id: str) -> Path:
        if not layer_id or not all(c in "0123456789abcdef" for c in layer_id):
            raise RuntimeFailure(f"{layer_id!r} is not a layer id.")
        path = self.root / layer_id
        if not path.is_dir():
            raise RuntimeFailure(f"Layer {layer_id} is not in the layer store.")
        return path

    def exists(self, layer_id: str) -> bool:
        return (self.root / layer_id).is_dir()

    def ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def staging(self) -> Path:
        """A fresh directory inside the store (same filesystem) to build a layer in."""
        path = self.root / f".staging-{uuid.uuid4().hex}"
        path.mkdir()
        os.chmod(path, 0o755)
        return path

    def commit(self, staged: Path) -> str:
        """Name a staged tree by its digest; an identical layer already stored wins."""
        layer_id = tree_digest(staged)
        with self._lock:
            final = self.root / layer_id
            if final.exists():
                remove_tree(staged)
            else:
                staged.rename(final)
        return layer_id

    def size(self, layer_id: str) -> int:
        path = self.path(layer_id)
        if layer_id not in self._sizes:
            self._sizes[layer_id] = disk_usage(path)
        return self._sizes[layer_id]

    def remove(self, layer_id: str) -> int:
        freed = self.size(layer_id)
        with self._lock:
            remove_tree(self.path(layer_id))
            self._sizes.pop(layer_id, None)
        return freed

    def discard_staging(self) -> None:
        """Remove half-built layers an interrupted capture left behind."""
        for leftover in self.root.glob(".staging-*"):
            remove_tree(leftover)
