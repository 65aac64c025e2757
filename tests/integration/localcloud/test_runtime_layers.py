# SPDX-License-Identifier: GPL-3.0-or-later
"""The layer store: content addressing and overlayfs deletion records, on real files (as root)."""
from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

import pytest

from localcloud.runtime import RuntimeFailure
from localcloud.runtime.layers import OPAQUE_XATTR, LayerStore, copy_tree, tree_digest
from localcloud.runtime.userdata import parse


def make_upper(root: Path) -> None:
    """An upper dir as overlayfs leaves it: a change, a whiteout, an opaque dir, a hard link, mount xattrs."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "motd").write_text("baked\n")
    os.chmod(root / "etc" / "motd", 0o640)
    os.mknod(root / "etc" / "issue", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (root / "opt" / "app").mkdir(parents=True)
    os.setxattr(root / "opt" / "app", OPAQUE_XATTR, b"y")
    (root / "opt" / "app" / "only").write_text("fresh\n")
    os.link(root / "opt" / "app" / "only", root / "opt" / "app" / "alias")
    os.symlink("/etc/motd", root / "opt" / "motd-link")
    os.setxattr(root / "etc", "trusted.overlay.impure", b"y")
    os.chown(root / "opt" / "app" / "only", 1000, 1000)


def test_copy_keeps_deletions_and_drops_mount_xattrs(tmp_path: Path) -> None:
    upper, copy = tmp_path / "upper", tmp_path / "copy"
    make_upper(upper)
    copy.mkdir()
    copy_tree(upper, copy)
    whiteout = os.lstat(copy / "etc" / "issue")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
    assert os.getxattr(copy / "opt" / "app", OPAQUE_XATTR) == b"y"
    assert "trusted.overlay.impure" not in os.listxattr(copy / "etc")
    assert os.lstat(copy / "opt" / "app" / "only").st_ino == os.lstat(copy / "opt" / "app" / "alias").st_ino
    assert os.lstat(copy / "opt" / "app" / "only").st_uid == 1000
    assert stat.S_IMODE(os.lstat(copy / "etc" / "motd").st_mode) == 0o640
    assert os.readlink(copy / "opt" / "motd-link") == "/etc/motd"
    assert tree_digest(copy) == tree_digest(upper)


def test_digest_follows_content_not_time(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    make_upper(one)
    make_upper(two)
    os.utime(two / "etc" / "motd", (1, 1))
    assert tree_digest(one) == tree_digest(two)
    (two / "etc" / "motd").write_text("other\n")
    assert tree_digest(one) != tree_digest(two)
    (two / "etc" / "motd").write_text("baked\n")
    os.removexattr(two / "opt" / "app", OPAQUE_XATTR)
    assert tree_digest(one) != tree_digest(two), "an opaque directory must not hash like a merged one"


def test_store_shares_equal_layers_and_frees_them(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "layers")
    ids = []
    for _attempt in range(2):
        staged = store.staging()
        make_upper(staged)
        ids.append(store.commit(staged))
    assert ids[0] == ids[1]
    assert store.ids() == [ids[0]]
    size = store.size(ids[0])
    assert size > 0
    assert store.remove(ids[0]) == size
    assert store.ids() == []
    with pytest.raises(RuntimeFailure):
        store.size(ids[0])
    with pytest.raises(RuntimeFailure):
        store.path("../etc")


def test_user_data_forms() -> None:
    assert parse(None).script is None
    script = b"#!/bin/sh\necho hi\n"
    assert parse(script).script == script
    assert parse(gzip.compress(script)).script == script
    data = parse(b"#cloud-config\nssh_authorized_keys: [ssh-ed25519 AAAA one]\n"
                 b"ssh_keys: {rsa_private: PRIVATE, rsa_public: ssh-rsa BBBB host}\n")
    assert data.authorized_keys == ["ssh-ed25519 AAAA one"]
    assert data.host_keys == {"ssh_host_rsa_key": "PRIVATE\n", "ssh_host_rsa_key.pub": "ssh-rsa BBBB host\n"}
    assert parse(b"just text").authorized_keys == []
    with pytest.raises(RuntimeFailure):
        parse(b"#cloud-config\nssh_authorized_keys: not-a-list\n")
