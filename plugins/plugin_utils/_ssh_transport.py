# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Open an authenticated paramiko Transport: retries, jump host, host keys, Instance Connect."""
from __future__ import annotations

import contextlib
import os
import socket
import time
import typing as t

from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_hostkeys import (
    HostKeyError,
    HostKeyVerifier,
    parse_pinned_keys,
)
from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_instance_connect import (
    InstanceConnectError,
    push_public_key,
)

try:
    import paramiko
except ImportError:  # the plugin reports the missing library when it is used
    paramiko = None  # type: ignore[assignment]

Settings = dict[str, t.Any]
# Instance Connect keys live 60 s on the instance; push again well before that.
_PUSH_VALID_FOR = 40.0
_DEFAULT_KEY_FILES = ("id_ed25519", "id_ecdsa", "id_rsa")


class ConnectError(Exception):
    """Why the SSH session could not be set up; `kind` is unreachable, auth or hostkey."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Retry(Exception):
    """A failure worth retrying until connect_timeout runs out (the host may be booting)."""


def _where(endpoint: Settings) -> str:
    return f"{endpoint.get('user')}@{endpoint['host']}:{endpoint['port']}"


def load_private_key(path: str) -> t.Any:
    path = os.path.expanduser(path)
    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        raise ConnectError("auth", f"private key file {path} does not exist") from None
    except (paramiko.SSHException, OSError, ValueError) as exc:
        raise ConnectError("auth", f"cannot load private key file {path}: {exc}") from exc


def public_key_line(path: str) -> str:
    key = load_private_key(path)
    return f"{key.get_name()} {key.get_base64()}"


def _candidate_keys(endpoint: Settings) -> list[tuple[str, t.Any]]:
    keys: list[tuple[str, t.Any]] = []
    if endpoint.get("private_key_file"):
        keys.append((endpoint["private_key_file"], load_private_key(endpoint["private_key_file"])))
    if endpoint.get("allow_agent"):
        with contextlib.suppress(paramiko.SSHException):
            keys.extend(("ssh-agent key", key) for key in paramiko.Agent().get_keys())
    if endpoint.get("look_for_keys") and not endpoint.get("private_key_file"):
        for name in _DEFAULT_KEY_FILES:
            path = os.path.expanduser(f"~/.ssh/{name}")
            if os.path.exists(path):
                try:
                    keys.append((path, paramiko.PKey.from_path(path)))
                except (paramiko.SSHException, OSError, ValueError):
                    continue
    return keys


def _authenticate(transport: t.Any, endpoint: Settings) -> None:
    user = endpoint["user"]
    tried: list[str] = []
    for label, key in _candidate_keys(endpoint):
        tried.append(label)
        try:
            transport.auth_publickey(user, key)
            return
        except paramiko.AuthenticationException:
            continue
    if endpoint.get("password"):
        tried.append("password")
        try:
            transport.auth_password(user, endpoint["password"])
            return
        except paramiko.AuthenticationException:
            pass
    what = ", ".join(tried) if tried else "no key or password was given"
    raise ConnectError("auth", f"authentication failed for {_where(endpoint)} (tried: {what})")


def _handshake(sock: t.Any, endpoint: Settings, settings: Settings, attempt_timeout: float) -> t.Any:
    transport = paramiko.Transport(sock, default_window_size=16 * 1024 * 1024)
    transport.banner_timeout = settings["banner_timeout"]
    transport.auth_timeout = settings["auth_timeout"]
    pinned = parse_pinned_keys(endpoint.get("host_keys"))
    verifier = HostKeyVerifier(endpoint["host"], endpoint["port"], settings["host_key_checking"],
                               settings.get("known_hosts_file"), pinned, settings.get("record_host_keys", False))
    verifier.restrict_algorithms(transport)
    _prefer_fast_ciphers(transport)
    try:
        transport.start_client(timeout=attempt_timeout)
        # raises too when the server hung up or the banner timed out during negotiation
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        # sshd still starting (or MaxStartups) drops the connection before the banner
        raise _Retry(f"SSH handshake with {endpoint['host']}:{endpoint['port']} failed: {exc or type(exc).__name__}") from exc
    try:
        blob = key.asbytes()
        verifier.verify(key.get_name(), blob)
        _authenticate(transport, endpoint)
    except HostKeyError as exc:
        transport.close()
        raise ConnectError("hostkey", str(exc)) from exc
    except ConnectError:
        transport.close()
        raise
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        raise ConnectError("auth", f"authentication with {_where(endpoint)} failed: {exc}") from exc
    if settings.get("keepalive"):
        transport.set_keepalive(int(settings["keepalive"]))
    return transport


def _prefer_fast_ciphers(transport: t.Any) -> None:
    # AES-GCM authenticates as it encrypts, sparing a separate HMAC pass over every packet.
    options = transport.get_security_options()
    fast = [c for c in options.ciphers if c.startswith("aes128-gcm")]
    options.ciphers = fast + [c for c in options.ciphers if c not in fast]


def _tcp(host: str, port: int, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise _Retry(f"cannot reach {host} port {port}: {exc.strerror or exc}") from exc
    # Nagle's algorithm delays the small writes of every exec request by tens of ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return sock


def _attempt(settings: Settings, attempt_timeout: float) -> tuple[t.Any, t.Any]:
    target = settings["target"]
    jump = settings.get("jump")
    jump_transport = None
    if jump:
        try:
            jump_transport = _handshake(_tcp(jump["host"], jump["port"], attempt_timeout), jump, settings, attempt_timeout)
        except _Retry as exc:
            raise _Retry(f"jump host {_where(jump)}: {exc}") from exc
        except ConnectError as exc:
            raise ConnectError(exc.kind, f"jump host {_where(jump)}: {exc}") from exc
        try:
            channel = jump_transport.open_channel("direct-tcpip", (target["host"], target["port"]),
                                                  ("127.0.0.1", 0), timeout=attempt_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            jump_transport.close()
            raise _Retry(f"jump host {_where(jump)} cannot reach {target['host']}:{target['port']}: {exc}") from exc
        sock: t.Any = channel
    else:
        sock = _tcp(target["host"], target["port"], attempt_timeout)
    try:
        return _handshake(sock, target, settings, attempt_timeout), jump_transport
    except BaseException:
        if jump_transport is not None:
            jump_transport.close()
        raise


def open_transport(settings: Settings) -> tuple[t.Any, t.Any]:
    """Return (transport, jump transport or None); retry with backoff up to connect_timeout."""
    if paramiko is None:
        raise ConnectError("error", "the bakery.ami.paramiko connection needs the paramiko Python library")
    deadline = time.monotonic() + float(settings["connect_timeout"])
    delay = 0.25
    pushed_at = -_PUSH_VALID_FOR
    target = settings["target"]
    while True:
        if settings.get("instance_connect") and time.monotonic() - pushed_at >= _PUSH_VALID_FOR:
            if not target.get("private_key_file"):
                raise ConnectError("auth", "instance_connect needs private_key_file (its public half is pushed)")
            try:
                push_public_key(settings["instance_connect"], target["user"], public_key_line(target["private_key_file"]))
            except InstanceConnectError as exc:
                raise ConnectError("unreachable", str(exc)) from exc
            pushed_at = time.monotonic()
        remaining = deadline - time.monotonic()
        try:
            return _attempt(settings, max(1.0, min(float(settings["timeout"]), remaining)))
        except _Retry as exc:
            remaining = deadline - time.monotonic()
            if remaining <= delay:
                raise ConnectError("unreachable", f"{exc} (gave up after connect_timeout "
                                   f"{settings['connect_timeout']}s)") from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
