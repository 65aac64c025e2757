# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Frames exchanged between the connection plugin and its per-host control process."""
from __future__ import annotations

import json
import socket
import struct
import typing as t

# One request per Unix-socket connection: the client sends REQUEST, then (for exec) STDIN
# frames and STDIN_EOF; the control process answers with STDOUT/STDERR frames and one RESULT.
REQUEST = b"Q"
STDIN = b"I"
STDIN_EOF = b"E"
STDOUT = b"O"
STDERR = b"R"
RESULT = b"X"

_HEADER = struct.Struct("!cI")
MAX_FRAME = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a frame."""


def send_frame(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    header = _HEADER.pack(kind, len(payload))
    if len(payload) < 65536:
        sock.sendall(header + payload)  # one write: small frames are the common case
    else:
        sock.sendall(header)
        sock.sendall(payload)


def send_json(sock: socket.socket, kind: bytes, value: dict[str, t.Any]) -> None:
    send_frame(sock, kind, json.dumps(value).encode())


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            return None
        got += n
    return bytes(buf)


def recv_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """Return (kind, payload), or None when the peer closed the connection cleanly."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    kind, size = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes is too large")
    payload = _recv_exact(sock, size) if size else b""
    if payload is None:
        raise ProtocolError("connection closed in the middle of a frame")
    return kind, payload


def decode_json(payload: bytes) -> dict[str, t.Any]:
    value = json.loads(payload)
    if not isinstance(value, dict):
        raise ProtocolError("expected a JSON object")
    return value
