# SPDX-License-Identifier: GPL-3.0-or-later
"""The base image: a plain Debian userland over the host's read-only /usr.

The base layer holds a generated /etc (accounts, sudo, sshd, PAM) and the empty top-level
directories. Instances stack it over the host's /usr through a second overlay, so nothing
is copied and nothing of the host's /etc, homes, /root, /work or /usr/local is visible.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from localcloud.runtime.layers import OPAQUE_XATTR, LayerStore

# Bump when the generated tree changes, so a cached base from older code is rebuilt.
RECIPE_VERSION = 1
DEFAULT_USER = "ec2-user"
DEFAULT_UID = 1000

# System accounts of a fresh Debian; passwords are "*": no password login, not locked for keys.
_USERS = [
    ("root", 0, 0, "root", "/root", "/bin/bash"),
    ("daemon", 1, 1, "daemon", "/usr/sbin", "/usr/sbin/nologin"),
    ("bin", 2, 2, "bin", "/bin", "/usr/sbin/nologin"),
    ("sys", 3, 3, "sys", "/dev", "/usr/sbin/nologin"),
    ("sync", 4, 65534, "sync", "/bin", "/bin/sync"),
    ("man", 6, 12, "man", "/var/cache/man", "/usr/sbin/nologin"),
    ("mail", 8, 8, "mail", "/var/mail", "/usr/sbin/nologin"),
    ("www-data", 33, 33, "www-data", "/var/www", "/usr/sbin/nologin"),
    ("backup", 34, 34, "backup", "/var/backups", "/usr/sbin/nologin"),
    ("_apt", 42, 65534, "", "/nonexistent", "/usr/sbin/nologin"),
    ("sshd", 100, 65534, "", "/run/sshd", "/usr/sbin/nologin"),
    ("nobody", 65534, 65534, "nobody", "/nonexistent", "/usr/sbin/nologin"),
    (DEFAULT_USER, DEFAULT_UID, DEFAULT_UID, "EC2 Default User", f"/home/{DEFAULT_USER}", "/bin/bash"),
]
_GROUPS = [
    ("root", 0, ""), ("daemon", 1, ""), ("bin", 2, ""), ("sys", 3, ""), ("adm", 4, DEFAULT_USER),
    ("tty", 5, ""), ("disk", 6, ""), ("mail", 8, ""), ("man", 12, ""), ("kmem", 15, ""),
    ("sudo", 27, DEFAULT_USER), ("www-data", 33, ""), ("backup", 34, ""), ("shadow", 42, ""),
    ("utmp", 43, ""), ("staff", 50, ""), ("users", 100, ""), ("nogroup", 65534, ""),
    (DEFAULT_USER, DEFAULT_UID, ""),
]

# Host /etc entries that are plain distribution configuration, never credentials.
_HOST_ETC_COPIES = [
    "alternatives", "ld.so.conf", "ld.so.conf.d", "ld.so.cache", "login.defs", "skel",
    "debian_version", "issue", "issue.net", "profile", "profile.d", "bash.bashrc", "inputrc",
    "os-release", "ssh/moduli", "ssh/ssh_config", "ssl/openssl.cnf", "ssl/certs",
    "default/useradd", "adduser.conf", "deluser.conf", "mime.types", "python3",
    "python3.11", "python3.12", "python3.13", "localtime", "timezone",
]

_SSHD_CONFIG = """\
# Key-only logins, no root: as on a public cloud image.
Include /etc/ssh/sshd_config.d/*.conf
HostKey /etc/ssh/ssh_host_rsa_key
HostKey /etc/ssh/ssh_host_ecdsa_key
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""

_SUDOERS = """\
Defaults	env_reset
Defaults	secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Defaults	use_pty
root	ALL=(ALL:ALL) ALL
%sudo	ALL=(ALL:ALL) ALL
@includedir /etc/sudoers.d
"""

_PAM = {
    "common-auth": "auth [success=1 default=ignore] pam_unix.so nullok\nauth requisite pam_deny.so\nauth required pam_permit.so\n",
    "common-account": "account required pam_unix.so\n",
    "common-password": "password required pam_unix.so obscure yescrypt\n",
    "common-session": "session required pam_unix.so\n",
    "common-session-noninteractive": "session required pam_unix.so\n",
    "other": "auth required pam_deny.so\naccount required pam_deny.so\npassword required pam_deny.so\nsession required pam_deny.so\n",
}
for _service in ("sudo", "sudo-i", "su", "su-l", "runuser", "runuser-l", "login", "sshd", "chsh", "chfn", "passwd"):
    _PAM[_service] = (
        "@include common-auth\n@include common-account\n@include common-session-noninteractive\n@include common-password\n"
    )
_PAM["su"] = _PAM["su-l"] = "auth sufficient pam_rootok.so\n" + _PAM["sudo"]
_PAM["runuser"] = _PAM["runuser-l"] = "auth sufficient pam_rootok.so\nsession include common-session-noninteractive\n"

# sshd's AuthorizedKeysCommand for EC2 Instance Connect: keys the runtime pushed, until they expire.
INSTANCE_CONNECT_HELPER = "usr/lib/localcloud/instance-connect-keys"
_INSTANCE_CONNECT_SCRIPT = """\
#!/bin/sh
# Prints the Instance Connect keys pushed for user $1 whose expiry (epoch seconds) is still ahead.
keys="/run/localcloud/connect/$1"
[ -r "$keys" ] || exit 0
now=$(date +%s)
while read -r expiry key; do
    if [ "$expiry" -gt "$now" ] 2>/dev/null; then
        printf '%s\\n' "$key"
    fi
done < "$keys"
exit 0
"""


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def _mkdir(root: Path, rel: str, mode: int = 0o755, owner: int = 0) -> None:
    path = root / rel
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    os.chown(path, owner, owner)


def _copy_host_etc(root: Path) -> None:
    for rel in _HOST_ETC_COPIES:
        source = Path("/etc") / rel
        if not source.exists() and not source.is_symlink():
            continue
        target = root / "etc" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)


def _accounts(root: Path) -> None:
    passwd = "".join(f"{n}:x:{u}:{g}:{gecos}:{home}:{shell}\n" for n, u, g, gecos, home, shell in _USERS)
    shadow = "".join(f"{n}:*:20000:0:99999:7:::\n" for n, *_ in _USERS)
    group = "".join(f"{n}:x:{g}:{members}\n" for n, g, members in _GROUPS)
    gshadow = "".join(f"{n}:*::{members}\n" for n, _g, members in _GROUPS)
    _write(root, "etc/passwd", passwd)
    _write(root, "etc/group", group)
    _write(root, "etc/shadow", shadow, 0o640)
    _write(root, "etc/gshadow", gshadow, 0o640)
    for rel in ("etc/shadow", "etc/gshadow"):
        os.chown(root / rel, 0, 42)
    _write(root, "etc/sudoers.d/90-cloud-init-users", f"{DEFAULT_USER} ALL=(ALL) NOPASSWD:ALL\n", 0o440)
    _write(root, "etc/sudoers", _SUDOERS, 0o440)
    home = f"home/{DEFAULT_USER}"
    skel = Path("/etc/skel")
    _mkdir(root, home, 0o700, DEFAULT_UID)
    if skel.is_dir():
        for item in skel.iterdir():
            if item.is_file() and not item.is_symlink():
                shutil.copy2(item, root / home / item.name)
                os.chown(root / home / item.name, DEFAULT_UID, DEFAULT_UID)
    _mkdir(root, f"{home}/.ssh", 0o700, DEFAULT_UID)


def _etc(root: Path) -> None:
    _copy_host_etc(root)
    _accounts(root)
    for name, text in _PAM.items():
        _write(root, f"etc/pam.d/{name}", text)
    _write(root, "etc/ssh/sshd_config", _SSHD_CONFIG)
    _mkdir(root, "etc/ssh/sshd_config.d")
    _mkdir(root, "etc/ssh/ssh_config.d")
    _write(root, "etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\ngshadow: files\nhosts: files dns\n"
           "networks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n")
    _write(root, "etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    _write(root, "etc/hostname", "localhost\n")
    _write(root, "etc/resolv.conf", _host_resolv_conf())
    _write(root, "etc/shells", "/bin/sh\n/usr/bin/sh\n/bin/bash\n/usr/bin/bash\n/bin/dash\n/usr/bin/dash\n")
    _write(root, "etc/environment", "")
    _write(root, "etc/fstab", "# The local cloud mounts this instance's filesystems itself.\n")
    _mkdir(root, "etc/sudoers.d")
    os.symlink("../proc/self/mounts", root / "etc/mtab")


def _host_resolv_conf() -> str:
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return ""
    return "".join(f"{line}\n" for line in lines if line.startswith(("nameserver", "search", "options")))


def _skeleton(root: Path) -> None:
    for rel in ("boot", "dev", "etc", "home", "media", "mnt", "opt", "proc", "run", "srv", "sys", "usr", "var",
                "var/lib/cloud", "var/log", "var/cache", "var/lib", "var/spool", "var/mail", "var/backups",
                "var/local", "var/opt", "var/www"):
        _mkdir(root, rel)
    _mkdir(root, "root", 0o700)
    _mkdir(root, "tmp", 0o1777)
    _mkdir(root, "var/tmp", 0o1777)
    os.symlink("/run", root / "var/run")
    os.symlink("/run/lock", root / "var/lock")
    # The merged-/usr links, exactly as the host has them.
    for entry in os.scandir("/"):
        if entry.is_symlink() and os.readlink(entry.path).startswith("usr/"):
            os.symlink(os.readlink(entry.path), root / entry.name)
    # Hide the host's /usr/local (hand-installed software) behind an empty, opaque one.
    _mkdir(root, "usr/local")
    os.setxattr(root / "usr/local", OPAQUE_XATTR, b"y")
    for rel in ("bin", "etc", "games", "include", "lib", "man", "sbin", "share", "src"):
        _mkdir(root, f"usr/local/{rel}")
    _write(root, INSTANCE_CONNECT_HELPER, _INSTANCE_CONNECT_SCRIPT, 0o755)


def build_base_tree(root: Path) -> None:
    """Write the base layer's tree into the empty directory root."""
    _skeleton(root)
    _etc(root)


def ensure_base_layer(store: LayerStore, marker: Path) -> str:
    """The base layer's id, building it only when no cached build of this recipe exists."""
    try:
        cached = json.loads(marker.read_text())
        if cached.get("recipe") == RECIPE_VERSION and store.exists(cached["layer"]):
            return str(cached["layer"])
    except (OSError, ValueError, KeyError):
        pass
    staged = store.staging()
    build_base_tree(staged)
    layer_id = store.commit(staged)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"recipe": RECIPE_VERSION, "layer": layer_id}))
    tmp.replace(marker)
    return layer_id
