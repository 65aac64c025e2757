# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright: contributors to bakery.ami
from __future__ import annotations

DOCUMENTATION = r"""
name: paramiko
short_description: SSH over paramiko, with a persistent per-host session
description:
  - Runs commands and transfers files over SSH with the paramiko library, without the OpenSSH client.
  - The SSH session outlives a task, the way OpenSSH's ControlPersist does. A small control process per
    user, host, port and key holds the paramiko transport and serves the tasks over a Unix socket in a private
    (0700) directory. It leaves after O(idle_timeout) seconds without work; a dead or stale one is replaced
    transparently by the next task, and a transport whose server went away is reconnected.
  - Supports pipelining (the module is sent on stdin, without a PTY), become with and without a password
    (sudo, su), SFTP file transfers, a jump host, pinned host keys and EC2 Instance Connect.
  - Host keys are never accepted blindly. An unknown key fails with its fingerprint and a changed key fails as
    a possible man-in-the-middle attack, unless O(host_key_checking) is false.
author:
  - bakery.ami contributors (!UNKNOWN)
version_added: 0.1.0
requirements:
  - paramiko >= 3.4 (on the controller)
  - boto3 (on the controller, only for O(instance_connect))
options:
  remote_addr:
    description: Address of the remote host.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_ssh_host
      - name: ansible_paramiko_host
  port:
    description: SSH port of the remote host.
    type: int
    default: 22
    ini:
      - section: defaults
        key: remote_port
      - section: paramiko_connection
        key: remote_port
    env:
      - name: ANSIBLE_REMOTE_PORT
      - name: ANSIBLE_REMOTE_PARAMIKO_PORT
    vars:
      - name: ansible_port
      - name: ansible_ssh_port
      - name: ansible_paramiko_port
    keyword:
      - name: port
  remote_user:
    description:
      - User to log in as.
      - When not set, the name of the user running Ansible on the controller.
    type: str
    vars:
      - name: ansible_user
      - name: ansible_ssh_user
      - name: ansible_paramiko_user
    env:
      - name: ANSIBLE_REMOTE_USER
      - name: ANSIBLE_PARAMIKO_REMOTE_USER
    ini:
      - section: defaults
        key: remote_user
      - section: paramiko_connection
        key: remote_user
    keyword:
      - name: remote_user
  password:
    description: Password for password authentication, tried after the keys.
    type: str
    vars:
      - name: ansible_password
      - name: ansible_ssh_pass
      - name: ansible_ssh_password
      - name: ansible_paramiko_pass
      - name: ansible_paramiko_password
  private_key_file:
    description: Private key to authenticate with (and whose public half O(instance_connect) pushes).
    type: path
    ini:
      - section: defaults
        key: private_key_file
      - section: paramiko_connection
        key: private_key_file
    env:
      - name: ANSIBLE_PRIVATE_KEY_FILE
      - name: ANSIBLE_PARAMIKO_PRIVATE_KEY_FILE
    vars:
      - name: ansible_private_key_file
      - name: ansible_ssh_private_key_file
      - name: ansible_paramiko_private_key_file
    cli:
      - name: private_key_file
        option: "--private-key"
  allow_agent:
    description: Also try the keys of a running ssh-agent.
    type: bool
    default: true
    env:
      - name: ANSIBLE_PARAMIKO_ALLOW_AGENT
    ini:
      - section: paramiko_connection
        key: allow_agent
    vars:
      - name: ansible_paramiko_allow_agent
  look_for_keys:
    description: When O(private_key_file) is not set, also try C(~/.ssh/id_ed25519), C(id_ecdsa) and C(id_rsa).
    type: bool
    default: true
    env:
      - name: ANSIBLE_PARAMIKO_LOOK_FOR_KEYS
    ini:
      - section: paramiko_connection
        key: look_for_keys
    vars:
      - name: ansible_paramiko_look_for_keys
  timeout:
    description:
      - Seconds one connection attempt may take to open the TCP connection and the SSH handshake.
      - Also how long to wait for the privilege escalation prompt.
    type: int
    default: 10
    ini:
      - section: defaults
        key: timeout
      - section: paramiko_connection
        key: timeout
    env:
      - name: ANSIBLE_TIMEOUT
      - name: ANSIBLE_PARAMIKO_TIMEOUT
    vars:
      - name: ansible_paramiko_timeout
    cli:
      - name: timeout
  connect_timeout:
    description:
      - Total seconds to keep retrying, with backoff, while the host refuses or does not answer (for example a
        booting instance whose sshd is not up yet).
      - Authentication and host key failures are never retried.
    type: int
    default: 30
    env:
      - name: ANSIBLE_PARAMIKO_CONNECT_TIMEOUT
    ini:
      - section: paramiko_connection
        key: connect_timeout
    vars:
      - name: ansible_paramiko_connect_timeout
  banner_timeout:
    description: Seconds to wait for the server's SSH banner.
    type: float
    default: 30
    env:
      - name: ANSIBLE_PARAMIKO_BANNER_TIMEOUT
    ini:
      - section: paramiko_connection
        key: banner_timeout
    vars:
      - name: ansible_paramiko_banner_timeout
  auth_timeout:
    description: Seconds to wait for an authentication answer.
    type: float
    default: 30
    env:
      - name: ANSIBLE_PARAMIKO_AUTH_TIMEOUT
    ini:
      - section: paramiko_connection
        key: auth_timeout
    vars:
      - name: ansible_paramiko_auth_timeout
  keepalive:
    description: Seconds between SSH keepalive messages on an idle session; V(0) turns them off.
    type: int
    default: 15
    env:
      - name: ANSIBLE_PARAMIKO_KEEPALIVE
    ini:
      - section: paramiko_connection
        key: keepalive
    vars:
      - name: ansible_paramiko_keepalive
  pty:
    description: Allocate a PTY for commands run with become without pipelining (sudo's requiretty, su).
    type: bool
    default: true
    env:
      - name: ANSIBLE_PARAMIKO_PTY
    ini:
      - section: paramiko_connection
        key: pty
    vars:
      - name: ansible_paramiko_pty
  pipelining:
    description:
      - Send modules on the command's stdin instead of copying them to the host first.
      - On by default because the session is persistent and stdin is cheap; turn it off for hosts whose sudo
        has C(requiretty).
    type: bool
    default: true
    env:
      - name: ANSIBLE_PIPELINING
      - name: ANSIBLE_PARAMIKO_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: paramiko_connection
        key: pipelining
    vars:
      - name: ansible_pipelining
      - name: ansible_paramiko_pipelining
  host_key_checking:
    description:
      - Verify the host key against O(host_keys) or O(known_hosts_file).
      - Only V(false) accepts unknown or changed keys.
    type: bool
    default: true
    env:
      - name: ANSIBLE_HOST_KEY_CHECKING
      - name: ANSIBLE_PARAMIKO_HOST_KEY_CHECKING
    ini:
      - section: defaults
        key: host_key_checking
      - section: paramiko_connection
        key: host_key_checking
    vars:
      - name: ansible_host_key_checking
      - name: ansible_paramiko_host_key_checking
  known_hosts_file:
    description:
      - known_hosts file to check host keys against (a per-bake file is a good idea).
      - It is only written when O(record_host_keys) is true, under a lock and atomically.
    type: path
    default: ~/.ssh/known_hosts
    env:
      - name: ANSIBLE_PARAMIKO_KNOWN_HOSTS_FILE
    ini:
      - section: paramiko_connection
        key: known_hosts_file
    vars:
      - name: ansible_paramiko_known_hosts_file
      - name: bakery_paramiko_known_hosts_file
  record_host_keys:
    description: With O(host_key_checking=false), add the keys of hosts not yet known to O(known_hosts_file).
    type: bool
    default: false
    env:
      - name: ANSIBLE_PARAMIKO_RECORD_HOST_KEYS
    ini:
      - section: paramiko_connection
        key: record_host_keys
    vars:
      - name: ansible_paramiko_record_host_keys
  host_keys:
    description:
      - Host keys pinned for this host; when set, only these are trusted and O(known_hosts_file) is not read.
      - A list of C(keytype base64) strings or known_hosts lines, or one text block of such lines (the
        C(-----BEGIN SSH HOST KEY KEYS-----) block cloud-init prints on the console is accepted as is).
    type: raw
    vars:
      - name: ansible_paramiko_host_keys
      - name: bakery_paramiko_host_keys
  jump_host:
    description:
      - Reach the host through this SSH server, as C([user@]host[:port]), with a direct-tcpip channel.
      - Its host key is checked the same way, against O(jump_host_keys) or O(known_hosts_file).
    type: str
    env:
      - name: ANSIBLE_PARAMIKO_JUMP_HOST
    ini:
      - section: paramiko_connection
        key: jump_host
    vars:
      - name: ansible_paramiko_jump_host
      - name: bakery_paramiko_jump_host
  jump_private_key_file:
    description: Private key for the jump host; defaults to O(private_key_file).
    type: path
    vars:
      - name: ansible_paramiko_jump_private_key_file
      - name: bakery_paramiko_jump_private_key_file
  jump_host_keys:
    description: Host keys pinned for the jump host, in the format of O(host_keys).
    type: raw
    vars:
      - name: ansible_paramiko_jump_host_keys
      - name: bakery_paramiko_jump_host_keys
  instance_connect:
    description:
      - Push the public half of O(private_key_file) with EC2 Instance Connect (SendSSHPublicKey) before
        connecting and on every reconnect.
      - Needs O(instance_id), O(region) and AWS credentials (options below, or the usual AWS environment).
    type: bool
    default: false
    env:
      - name: ANSIBLE_PARAMIKO_INSTANCE_CONNECT
    vars:
      - name: ansible_paramiko_instance_connect
      - name: bakery_paramiko_instance_connect
  instance_id:
    description: EC2 instance id for O(instance_connect).
    type: str
    vars:
      - name: ansible_paramiko_instance_id
      - name: bakery_paramiko_instance_id
  region:
    description: AWS region for O(instance_connect).
    type: str
    env:
      - name: AWS_REGION
      - name: AWS_DEFAULT_REGION
    vars:
      - name: ansible_paramiko_region
      - name: bakery_paramiko_region
  endpoint_url:
    description: URL of the EC2 Instance Connect API, for a private or local endpoint.
    type: str
    env:
      - name: ANSIBLE_PARAMIKO_ENDPOINT_URL
    vars:
      - name: ansible_paramiko_endpoint_url
      - name: bakery_paramiko_endpoint_url
  profile:
    description: AWS profile for O(instance_connect).
    type: str
    env:
      - name: AWS_PROFILE
    vars:
      - name: ansible_paramiko_profile
      - name: bakery_paramiko_profile
  access_key:
    description: AWS access key id for O(instance_connect).
    type: str
    env:
      - name: AWS_ACCESS_KEY_ID
    vars:
      - name: ansible_paramiko_access_key
      - name: bakery_paramiko_access_key
  secret_key:
    description: AWS secret access key for O(instance_connect).
    type: str
    env:
      - name: AWS_SECRET_ACCESS_KEY
    vars:
      - name: ansible_paramiko_secret_key
      - name: bakery_paramiko_secret_key
  session_token:
    description: AWS session token for O(instance_connect).
    type: str
    env:
      - name: AWS_SESSION_TOKEN
    vars:
      - name: ansible_paramiko_session_token
      - name: bakery_paramiko_session_token
  control_path_dir:
    description: Private directory (created with mode 0700) that holds the control processes' sockets.
    type: path
    default: ~/.ansible/cp
    env:
      - name: ANSIBLE_PARAMIKO_CONTROL_PATH_DIR
    ini:
      - section: paramiko_connection
        key: control_path_dir
    vars:
      - name: ansible_paramiko_control_path_dir
  idle_timeout:
    description: Seconds a control process keeps the SSH session open without any task before it leaves.
    type: int
    default: 60
    env:
      - name: ANSIBLE_PARAMIKO_IDLE_TIMEOUT
    ini:
      - section: paramiko_connection
        key: idle_timeout
    vars:
      - name: ansible_paramiko_idle_timeout
"""

EXAMPLES = r"""
---
# inventory: a builder instance whose host keys were read from its console output
all:
  hosts:
    builder:
      ansible_host: 203.0.113.10
      ansible_user: admin
      ansible_connection: bakery.ami.paramiko
      ansible_python_interpreter: /usr/bin/python3
      ansible_private_key_file: ~/.ssh/bake-key
      ansible_paramiko_known_hosts_file: ./build/known_hosts
      bakery_paramiko_host_keys:
        - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGl0IGlzIG9ubHkgYW4gZXhhbXBsZSBrZXkgZm9yIGRvY3M=
"""

import base64
import getpass
import importlib.util
import os
import time
import typing as t

from ansible.errors import AnsibleAuthenticationFailure, AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.bakery.ami.plugins.plugin_utils._plugin_options import register_options
from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_client import ControlClient, ControlError, ExecSession
from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_hostkeys import parse_pinned_keys
from ansible_collections.bakery.ami.plugins.plugin_utils._ssh_protocol import RESULT, STDERR, STDOUT

display = Display()
# Each task's worker imports this module afresh; registering the options here spares it
# ansible-core's slower parse of DOCUMENTATION (see _plugin_options).
register_options("connection", __name__, DOCUMENTATION)


def _pinned(value: t.Any, what: str) -> list[str]:
    try:
        return [f"{key_type} {to_text(base64.b64encode(blob))}" for key_type, blob in parse_pinned_keys(value)]
    except ValueError as exc:
        raise AnsibleError(f"{what}: {exc}") from None


def _absolute(path: str | None) -> str | None:
    # the control process runs from /, so relative paths are resolved here
    return os.path.abspath(os.path.expanduser(path)) if path else None


class Connection(ConnectionBase):
    """SSH over paramiko through a persistent per-host control process."""

    transport = "bakery.ami.paramiko"
    has_pipelining = True
    _connected: bool  # set by ConnectionBase

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: ControlClient | None = None

    def _settings(self) -> dict[str, t.Any]:
        user = self.get_option("remote_user") or getpass.getuser()
        key_file = self.get_option("private_key_file")
        target = {
            "host": self.get_option("remote_addr"),
            "port": int(self.get_option("port") or 22),
            "user": user,
            "private_key_file": _absolute(key_file),
            "password": self.get_option("password"),
            "allow_agent": self.get_option("allow_agent"),
            "look_for_keys": self.get_option("look_for_keys"),
            "host_keys": _pinned(self.get_option("host_keys"), "host_keys"),
        }
        settings: dict[str, t.Any] = {
            "target": target,
            "jump": None,
            "timeout": self.get_option("timeout") or 10,
            "connect_timeout": self.get_option("connect_timeout"),
            "banner_timeout": self.get_option("banner_timeout"),
            "auth_timeout": self.get_option("auth_timeout"),
            "keepalive": self.get_option("keepalive"),
            "host_key_checking": self.get_option("host_key_checking"),
            "known_hosts_file": _absolute(self.get_option("known_hosts_file")),
            "record_host_keys": self.get_option("record_host_keys"),
            "idle_timeout": self.get_option("idle_timeout"),
            "instance_connect": None,
        }
        jump = self.get_option("jump_host")
        if jump:
            jump_user, at_sign, address = jump.rpartition("@")
            host, port = address, 22
            if address.startswith("["):
                host, bracket, rest = address[1:].partition("]")
                port = int(rest[1:]) if rest.startswith(":") else 22
            elif address.count(":") == 1:
                host, port_text = address.split(":")
                port = int(port_text)
            jump_key = self.get_option("jump_private_key_file") or key_file
            settings["jump"] = {
                "host": host, "port": port, "user": jump_user or user,
                "private_key_file": _absolute(jump_key),
                "password": None, "allow_agent": target["allow_agent"], "look_for_keys": target["look_for_keys"],
                "host_keys": _pinned(self.get_option("jump_host_keys"), "jump_host_keys"),
            }
        if self.get_option("instance_connect"):
            settings["instance_connect"] = {
                name: self.get_option(name)
                for name in ("instance_id", "region", "endpoint_url", "profile", "access_key", "secret_key", "session_token")
            }
        return settings

    def _make_client(self) -> ControlClient:
        # Only the control process imports paramiko; a task's worker just talks to it over a Unix
        # socket, so it checks that the library is there without paying for importing it.
        if importlib.util.find_spec("paramiko") is None:
            raise AnsibleError("the bakery.ami.paramiko connection needs the paramiko Python library on the controller")
        settings = self._settings()
        spawn_timeout = float(settings["connect_timeout"]) + float(settings["banner_timeout"]) + float(settings["auth_timeout"]) + 30
        try:
            return ControlClient(settings, self.get_option("control_path_dir"), spawn_timeout)
        except ControlError as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: ControlError) -> AnsibleError:
        host = self.get_option("remote_addr")
        message = f"bakery.ami.paramiko to {host}: {exc}"
        if exc.kind == "auth":
            return AnsibleAuthenticationFailure(message)
        if exc.kind in ("file", "error"):
            return AnsibleError(message)
        return AnsibleConnectionFailure(message)

    def _connect(self) -> Connection:
        if self._connected:
            return self
        self._client = self._make_client()
        try:
            self._client.dial().close()  # starts the control process, so connection errors surface here
        except ControlError as exc:
            raise self._failure(exc) from None
        display.vvv(f"ESTABLISH bakery.ami.paramiko SESSION via {self._client.socket_path}", host=self.get_option("remote_addr"))
        self._connected = True
        return self

    def _active_client(self) -> ControlClient:
        if self._client is None:  # only after _connect, which ensure_connect runs first
            raise AnsibleError("bakery.ami.paramiko used before it was connected")
        return self._client

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        use_pty = bool(self.get_option("pty") and sudoable and in_data is None and self.become is not None)
        display.vvv(f"EXEC{' (pty)' if use_pty else ''} {cmd}", host=self.get_option("remote_addr"))
        try:
            session = self._active_client().exec(cmd, use_pty, term=os.environ.get("TERM") or "vt100")
        except ControlError as exc:
            raise self._failure(exc) from None
        try:
            out: list[bytes] = []
            err: list[bytes] = []
            if sudoable and self.become and self.become.expect_prompt():
                prefix_out, prefix_err = self._escalate(session)
                out.append(prefix_out)
                err.append(prefix_err)
            if session.result is None:
                session.start_stdin(in_data)
            while session.result is None:
                frame = session.read_frame()
                if frame is not None and frame[0] == STDOUT:
                    out.append(frame[1])
                elif frame is not None and frame[0] == STDERR:
                    err.append(frame[1])
        except ControlError as exc:
            raise self._failure(exc) from None
        finally:
            session.close()
        result = session.result
        if "error" in result:
            raise self._failure(ControlError(result.get("kind", "error"), result["error"]))
        return int(result["rc"]), b"".join(out), b"".join(err)

    def _escalate(self, session: ExecSession) -> tuple[bytes, bytes]:
        """Answer the become prompt; return the output seen once escalation succeeded."""
        if self.become is None:
            return b"", b""
        timeout = float(self.get_option("timeout"))
        deadline = time.monotonic() + timeout
        out = err = b""
        answered = False
        while True:
            frame = session.read_frame(timeout=deadline - time.monotonic())
            if frame is None:
                raise AnsibleConnectionFailure(
                    f"timed out after {timeout:.0f}s waiting for the {self.become.name} privilege escalation prompt "
                    f"on {self.get_option('remote_addr')}; output so far: {to_text(out + err)!r}")
            kind, data = frame
            if kind == RESULT:
                return out, err  # the command ended during escalation; the caller reports its output
            if kind == STDOUT:
                out += data
            elif kind == STDERR:
                err += data
            if self.become.check_success(out):
                return out, err
            if self.become.check_password_prompt(out) or self.become.check_password_prompt(err):
                if answered:
                    raise AnsibleAuthenticationFailure(f"incorrect {self.become.name} password")
                session.write(to_bytes(self.become.get_option("become_pass") or "", errors="surrogate_or_strict") + b"\n")
                answered = True
                out = err = b""
            elif self.become.check_incorrect_password(out + err):
                raise AnsibleAuthenticationFailure(f"incorrect {self.become.name} password")

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self.get_option("remote_addr"))
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        try:
            self._active_client().put(in_path, out_path)
        except ControlError as exc:
            raise self._failure(exc) from None

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self.get_option("remote_addr"))
        try:
            self._active_client().fetch(in_path, out_path)
        except ControlError as exc:
            raise self._failure(exc) from None

    def reset(self) -> None:
        """Stop the control process so the next task opens a new SSH session."""
        client = self._client or self._make_client()
        if client.stop():
            display.vvv(f"RESET bakery.ami.paramiko session {client.socket_path}", host=self.get_option("remote_addr"))
        self._connected = False

    def close(self) -> None:
        # The SSH session belongs to the control process and outlives this task on purpose.
        self._connected = False
