# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The per-host control process: holds one SSH transport and serves requests on a Unix socket.

Started by the connection plugin (see _ssh_client); reads its settings as JSON on stdin,
connects, reports {"ok": ...} on stdout, then serves until idle for idle_timeout seconds.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import typing as t

from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_protocol import (
    REQUEST,
    RESULT,
    STDERR,
    STDIN,
    STDIN_EOF,
    STDOUT,
    ProtocolError,
    decode_json,
    recv_frame,
    send_frame,
    send_json,
)
from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_transport import ConnectError, Settings, open_transport

try:
    import paramiko
except ImportError:  # open_transport reports it
    paramiko = None  # type: ignore[assignment]

_CHUNK = 256 * 1024
# The write length OpenSSH's sftp-server accepts (its limits@openssh.com max-write-length).
_SFTP_WRITE = 255 * 1024
_SESSION_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError)
if paramiko is not None:
    _SESSION_ERRORS += (paramiko.SSHException,)


class ControlServer:
    def __init__(self, settings: Settings, socket_path: str) -> None:
        self.settings = settings
        self.socket_path = socket_path
        self.lock = threading.Lock()
        self.sftp_lock = threading.Lock()
        self.transport: t.Any = None
        self.jump: t.Any = None
        self.sftp: t.Any = None
        self.active = 0
        self.last_used = time.monotonic()
        self.stopping = False

    def connect(self) -> None:
        self.transport, self.jump = open_transport(self.settings)

    def close_transport(self) -> None:
        for item in (self.sftp, self.transport, self.jump):
            if item is not None:
                with contextlib.suppress(*_SESSION_ERRORS):
                    item.close()
        self.sftp = self.transport = self.jump = None

    def live_transport(self) -> t.Any:
        with self.lock:
            if self.transport is None or not self.transport.is_active():
                # sshd restarted or the network dropped: connect again, transparently
                self.close_transport()
                self.connect()
            return self.transport

    def open_session(self) -> t.Any:
        for attempt in (1, 2):
            transport = self.live_transport()
            try:
                return transport.open_session(timeout=float(self.settings["timeout"]))
            except _SESSION_ERRORS:
                # A transport that looked alive but is not: nothing ran yet, so retry once.
                with self.lock:
                    if self.transport is transport:
                        self.close_transport()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def open_sftp(self) -> t.Any:
        transport = self.live_transport()
        if self.sftp is None or self.sftp.get_channel().closed or self.sftp.get_channel().get_transport() is not transport:
            self.sftp = transport.open_sftp_client()
        return self.sftp

    def handle(self, conn: socket.socket) -> None:
        try:
            frame = recv_frame(conn)
            if frame is None or frame[0] != REQUEST:
                return
            request = decode_json(frame[1])
            op = request.get("op")
            try:
                if op == "exec":
                    self.run_exec(conn, request)
                elif op == "put":
                    with self.sftp_lock:
                        sftp_put(self.open_sftp(), request["local"], request["remote"])
                    send_json(conn, RESULT, {"ok": True})
                elif op == "fetch":
                    with self.sftp_lock:
                        self.open_sftp().get(request["remote"], request["local"])
                    send_json(conn, RESULT, {"ok": True})
                elif op == "stop":
                    self.begin_stop()
                    send_json(conn, RESULT, {"ok": True})
                else:
                    send_json(conn, RESULT, {"error": f"unknown request {op!r}", "kind": "error"})
            except ConnectError as exc:
                send_json(conn, RESULT, {"error": str(exc), "kind": exc.kind})
            except OSError as exc:
                kind = "file" if op in ("put", "fetch") and not isinstance(exc, (EOFError, ConnectionError)) else "unreachable"
                send_json(conn, RESULT, {"error": f"{op} failed: {exc}", "kind": kind})
            except _SESSION_ERRORS as exc:
                send_json(conn, RESULT, {"error": f"SSH session failed: {exc or type(exc).__name__}", "kind": "unreachable"})
        except (OSError, ProtocolError, ValueError):
            pass  # the client went away; nothing to answer
        finally:
            conn.close()
            with self.lock:
                self.active -= 1
                self.last_used = time.monotonic()

    def run_exec(self, conn: socket.socket, request: dict[str, t.Any]) -> None:
        channel = self.open_session()
        try:
            if request.get("pty"):
                channel.get_pty(term=request.get("term") or "vt100", width=int(request.get("width") or 80),
                                height=int(request.get("height") or 24))
            channel.exec_command(request["cmd"])
            send_lock = threading.Lock()

            def pump(read: t.Callable[[int], bytes], kind: bytes) -> None:
                while True:
                    data = read(_CHUNK)
                    if not data:
                        return
                    with send_lock:
                        send_frame(conn, kind, data)

            feeder = threading.Thread(target=_feed_stdin, args=(conn, channel), daemon=True)
            errors = threading.Thread(target=pump, args=(channel.recv_stderr, STDERR), daemon=True)
            feeder.start()
            errors.start()
            pump(channel.recv, STDOUT)
            errors.join()
            status = channel.recv_exit_status()
            with send_lock:
                send_json(conn, RESULT, {"rc": status})
        finally:
            channel.close()

    def begin_stop(self) -> None:
        self.stopping = True
        self.unlink_socket()

    def unlink_socket(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def start_thread(self, conn: socket.socket) -> None:
        with self.lock:
            self.active += 1
        threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def serve(self, listener: socket.socket) -> None:
        idle_timeout = float(self.settings["idle_timeout"])
        listener.settimeout(min(1.0, max(0.1, idle_timeout / 4)))
        while not self.stopping:
            try:
                conn = listener.accept()[0]
            except TimeoutError:
                with self.lock:
                    idle = self.active == 0 and time.monotonic() - self.last_used > idle_timeout
                if idle:
                    self.unlink_socket()
                    break
                continue
            conn.settimeout(None)
            self.start_thread(conn)
        # The socket name is gone; serve whoever connected just before that, then leave.
        listener.setblocking(False)
        while True:
            try:
                conn = listener.accept()[0]
            except (TimeoutError, BlockingIOError):
                break
            conn.setblocking(True)
            self.start_thread(conn)
        listener.close()
        while True:
            with self.lock:
                if self.active == 0:
                    break
            time.sleep(0.05)
        self.close_transport()


def sftp_put(sftp: t.Any, local: str, remote: str) -> None:
    """Upload with large pipelined writes: a quarter of the SFTP requests paramiko's put makes."""
    with open(local, "rb") as source, sftp.open(remote, "wb") as target:
        target.set_pipelined(True)
        target.MAX_REQUEST_SIZE = _SFTP_WRITE
        while True:
            chunk = source.read(4 * _SFTP_WRITE)
            if not chunk:
                break
            target.write(chunk)
    size = os.path.getsize(local)
    written = sftp.stat(remote).st_size
    if written != size:
        raise OSError(f"size mismatch in put: {written} of {size} bytes arrived")


def _feed_stdin(conn: socket.socket, channel: t.Any) -> None:
    try:
        while True:
            frame = recv_frame(conn)
            if frame is None:
                channel.close()  # the client is gone: stop the remote command
                return
            kind, payload = frame
            if kind == STDIN:
                channel.sendall(payload)
            elif kind == STDIN_EOF:
                channel.shutdown_write()
    except (OSError, ProtocolError, EOFError):
        channel.close()
    except _SESSION_ERRORS:
        channel.close()


def main(argv: list[str]) -> int:
    socket_path = argv[1]
    os.umask(0o077)
    settings = json.loads(sys.stdin.buffer.read())
    server = ControlServer(settings, socket_path)
    status = sys.stdout
    try:
        server.connect()
    except ConnectError as exc:
        status.write(json.dumps({"ok": False, "kind": exc.kind, "message": str(exc)}) + "\n")
        return 1
    except Exception as exc:  # any other surprise still reaches the user as one message
        status.write(json.dumps({"ok": False, "kind": "error", "message": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging = f"{socket_path}.{os.getpid()}"
    listener.bind(staging)
    listener.listen(64)
    os.replace(staging, socket_path)  # appear under the real name only once listening
    status.write(json.dumps({"ok": True, "pid": os.getpid()}) + "\n")
    status.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    server.serve(listener)
    return 0
