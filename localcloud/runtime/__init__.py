# SPDX-License-Identifier: GPL-3.0-or-later
"""Real instances for the local cloud: overlayfs layers, namespaces and OpenSSH sshd on loopback."""
from __future__ import annotations

from localcloud.runtime.errors import RuntimeFailure
from localcloud.runtime.runtime import Runtime

RuntimeError_ = RuntimeFailure

__all__ = ["Runtime", "RuntimeFailure", "RuntimeError_"]
