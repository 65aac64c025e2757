# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Plugin side of the control process: find it, start it when missing or stale, talk to it."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import select
import socket
import stat
import subprocess
import sys
import threading
import time
import typing as t

from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_protocol import (
    REQUEST,
    RESULT,
    STDIN,
    STDIN_EOF,
    ProtocolError,
    decode_json,
    recv_frame,
    send_frame,
    send_json,
)

# Settings that never go into the control socket's name.
_SECRET_KEYS = ("password", "access_key", "secret_key", "session_token")
# What identifies a session; timeouts may differ between tasks (a meta task sees none) and
# must not start a second control process.
_IDENTITY = ("target", "jump", "host_key_checking", "known_hosts_file", "record_host_keys", "instance_connect")
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_control import main; "
    "sys.exit(main(sys.argv[1:]))"
)


class ControlError(Exception):
    """A request failed; `kind` is unreachable, auth, hostkey, file or error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _public_view(value: t.Any) -> t.Any:
    if isinstance(value, dict):
        return {k: _public_view(v) for k, v in value.items() if k not in _SECRET_KEYS}
    return value


def control_name(settings: dict[str, t.Any]) -> str:
    """One control process per distinct connection (user, host, port, key, jump, host keys...)."""
    identity = {name: settings.get(name) for name in _IDENTITY}
    digest = hashlib.sha256(json.dumps(_public_view(identity), sort_keys=True).encode()).hexdigest()
    return f"bakery-paramiko-{digest[:24]}"


def _collections_root() -> str:
    # .../ansible_collections/bakery/ami/plugins/plugin_utils/_ssh_client.py
    here = os.path.abspath(__file__)
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(here))))))


def private_dir(path: str) -> str:
    """Create (0700) or check the directory that holds the control sockets."""
    path = os.path.abspath(os.path.expanduser(path))
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ControlError("error", f"control_path_dir {path} must be a directory owned by this user with mode 0700")
    return path


class ExecSession:
    """One remote command; frames are read by the caller, stdin written from a thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.result: dict[str, t.Any] | None = None
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None

    def read_frame(self, timeout: float | None = None) -> tuple[bytes, bytes] | None:
        """Next frame, or None on timeout; raises ControlError if the control process vanished."""
        if timeout is not None:
            ready = select.select([self.sock], [], [], max(0.0, timeout))[0]
            if not ready:
                return None
        try:
            frame = recv_frame(self.sock)
        except (OSError, ProtocolError) as exc:
            raise ControlError("unreachable", f"lost the control process: {exc}") from exc
        if frame is None:
            raise ControlError("unreachable", "the control process ended before the command finished")
        if frame[0] == RESULT:
            self.result = decode_json(frame[1])
        return frame

    def write(self, data: bytes) -> None:
        send_frame(self.sock, STDIN, data)

    def start_stdin(self, data: bytes | None) -> None:
        """Send the rest of stdin and EOF without blocking the reader (large modules, chatty commands)."""

        def feed() -> None:
            try:
                view = memoryview(data or b"")
                for start in range(0, len(view), 256 * 1024):
                    send_frame(self.sock, STDIN, bytes(view[start:start + 256 * 1024]))
                send_frame(self.sock, STDIN_EOF)
            except OSError as exc:
                self._write_error = exc

        self._writer = threading.Thread(target=feed, daemon=True)
        self._writer.start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class ControlClient:
    def __init__(self, settings: dict[str, t.Any], control_dir: str, spawn_timeout: float) -> None:
        self.settings = settings
        self.control_dir = control_dir
        self.spawn_timeout = spawn_timeout
        self.socket_path = os.path.join(private_dir(control_dir), control_name(settings))

    def _dial(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.socket_path)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
                return None
            raise ControlError("unreachable", f"cannot use control socket {self.socket_path}: {exc}") from exc

    def dial(self) -> socket.socket:
        """Connect to the control process, starting one if there is none or it is stale."""
        sock = self._dial()
        if sock is not None:
            return sock
        with open(self.socket_path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one starter per host, others wait and reuse it
            sock = self._dial()
            if sock is not None:
                return sock
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)  # left by a control process that died
            self._spawn()
        sock = self._dial()
        if sock is None:
            raise ControlError("unreachable", f"the control process did not appear at {self.socket_path}")
        return sock

    def _spawn(self) -> None:
        process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, _collections_root(), self.socket_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, cwd="/",
        )
        if process.stdin is None or process.stdout is None:
            raise ControlError("error", "the control process has no pipes")
        process.stdin.write(json.dumps(self.settings).encode())
        process.stdin.close()
        ready = select.select([process.stdout], [], [], self.spawn_timeout)[0]
        line = process.stdout.readline() if ready else b""
        process.stdout.close()
        try:
            status = json.loads(line) if line else None
        except ValueError:
            status = None
        if not status:
            process.kill()
            process.wait()
            raise ControlError("unreachable", f"the control process for {self.describe()} did not start in "
                                              f"{self.spawn_timeout:.0f}s")
        if not status.get("ok"):
            process.wait()
            raise ControlError(status.get("kind", "error"), status.get("message", "connection failed"))
        # It outlives this worker on purpose; a daemon thread reaps it if it exits first.
        threading.Thread(target=process.wait, daemon=True).start()

    def describe(self) -> str:
        target = self.settings["target"]
        return f"{target.get('user')}@{target['host']}:{target['port']}"

    def _request(self, request: dict[str, t.Any]) -> socket.socket:
        sock = self.dial()
        try:
            send_json(sock, REQUEST, request)
        except OSError as exc:
            sock.close()
            raise ControlError("unreachable", f"lost the control process: {exc}") from exc
        return sock

    def _simple(self, request: dict[str, t.Any]) -> dict[str, t.Any]:
        session = ExecSession(self._request(request))
        try:
            while session.result is None:
                session.read_frame()
        finally:
            session.close()
        result = session.result
        if "error" in result:
            raise ControlError(result.get("kind", "error"), result["error"])
        return result

    def exec(self, cmd: str, pty: bool, term: str = "vt100", width: int = 80, height: int = 24) -> ExecSession:
        return ExecSession(self._request({"op": "exec", "cmd": cmd, "pty": pty, "term": term,
                                          "width": width, "height": height}))

    def put(self, local: str, remote: str) -> None:
        self._simple({"op": "put", "local": os.path.abspath(local), "remote": remote})

    def fetch(self, remote: str, local: str) -> None:
        self._simple({"op": "fetch", "remote": remote, "local": os.path.abspath(local)})

    def stop(self) -> bool:
        """Ask a running control process to leave; False when none was running."""
        sock = self._dial()
        if sock is None:
            return False
        session = ExecSession(sock)
        try:
            send_json(sock, REQUEST, {"op": "stop"})
            deadline = time.monotonic() + 10
            while session.result is None and time.monotonic() < deadline:
                session.read_frame(timeout=deadline - time.monotonic())
        except (OSError, ControlError):
            pass
        finally:
            session.close()
        return True
