# SPDX-License-Identifier: GPL-3.0-or-later
"""PID 1 of a new instance's namespaces, run by the host's /usr/bin/python3 -I.

It mounts the instance's root (overlay over its layers) and /usr (overlay over its layers
and the host's read-only /usr), a private /proc, /dev, /sys and /run, pivots into that root,
drops the capabilities that could reach the host, and hands over to init.sh. Stand-alone on
purpose: it imports nothing from the runtime package.
"""
from __future__ import annotations

import ctypes
import json
import os
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_CAPBSET_DROP = 24
# What sshd, sudo and package installs need; everything else (mount, raw I/O, modules,
# host network and clock, device nodes, open_by_handle_at...) is dropped for good.
KEPT_CAPABILITIES = {
    0,  # chown
    1,  # dac_override
    3,  # fowner
    4,  # fsetid
    5,  # kill
    6,  # setgid
    7,  # setuid
    8,  # setpcap
    10,  # net_bind_service
    11,  # net_broadcast
    18,  # sys_chroot (sshd privilege separation)
    23,  # sys_nice
    24,  # sys_resource
    28,  # lease
    29,  # audit_write
    31,  # setfcap
}
# glibc has no pivot_root() wrapper; these are the system call numbers.
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                    data.encode() if data else None),
        f"mount {fstype or 'bind'} on {target}",
    )


def bind_readonly(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND)
    mount(source, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def overlay(lower: str, upper: str, work: str, target: str) -> None:
    options = f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,index=off,metacopy=off"
    mount("overlay", target, "overlay", 0, options)


def make_dev(root: str) -> None:
    dev = f"{root}/dev"
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=1m")
    for name, major, minor in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                               ("urandom", 1, 9), ("tty", 5, 0)):
        os.mknod(f"{dev}/{name}", 0o20666, os.makedev(major, minor))
        os.chmod(f"{dev}/{name}", 0o666)
    os.mkdir(f"{dev}/pts")
    os.mkdir(f"{dev}/shm")
    mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    os.symlink("/proc/self/fd", f"{dev}/fd")
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{number}", f"{dev}/{name}")


def make_proc(root: str) -> None:
    proc = f"{root}/proc"
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # Kernel knobs are the host's: read-only inside; a few files are blanked as containers do.
    for rel in ("sys", "sysrq-trigger", "irq", "bus", "fs"):
        if os.path.exists(f"{proc}/{rel}"):
            bind_readonly(f"{proc}/{rel}", f"{proc}/{rel}")
    for rel in ("kcore", "keys", "timer_list", "sched_debug", "kallsyms"):
        if os.path.exists(f"{proc}/{rel}"):
            mount(f"{root}/dev/null", f"{proc}/{rel}", None, MS_BIND)


def drop_capabilities() -> None:
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as handle:
        last = int(handle.read())
    for cap in range(last + 1):
        if cap not in KEPT_CAPABILITIES:
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        config = json.load(handle)
    # The console gets this boot and the instance's own output; unshare's messages stay in runtime.log.
    console = os.open(config["console"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(console, 1)
    os.dup2(console, 2)
    os.close(console)
    # /proc is still the host's here, so this is our pid as the host sees it.
    with open(config["pid_file"], "w", encoding="ascii") as handle:
        handle.write(os.readlink("/proc/self"))
    os.chdir(config["state_dir"])
    root = config["merged"]
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    overlay(config["root_lower"], config["root_upper"], config["root_work"], root)
    overlay(config["usr_lower"], config["usr_upper"], config["usr_work"], f"{root}/usr")
    make_dev(root)
    make_proc(root)
    mount("sysfs", f"{root}/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("tmpfs", f"{root}/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64m")
    for name in ("seed", "connect"):
        os.makedirs(f"{root}/run/localcloud/{name}")
        bind_readonly(config[name], f"{root}/run/localcloud/{name}")
    name = config["hostname"].encode()
    _check(_libc.sethostname(name, len(name)), "set the hostname")
    sshd_log = os.open(config["sshd_log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    if sshd_log != 3:
        os.dup2(sshd_log, 3)
        os.close(sshd_log)
    os.set_inheritable(3, True)
    os.chdir(root)
    # pivot_root(".", "."): the old root ends up on top of the new one and is detached at once.
    _check(_libc.syscall(SYS_PIVOT_ROOT[os.uname().machine], b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the host's root")
    os.chdir("/")
    drop_capabilities()
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    env.update({f"LOCALCLOUD_{key.upper()}": str(value) for key, value in config["init_env"].items()})
    os.execve("/bin/sh", ["/bin/sh", "/run/localcloud/seed/init.sh"], env)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - the console is the only place to say why a boot failed
        print(f"localcloud: boot failed: {exc}", flush=True)
        sys.exit(1)
