# SPDX-License-Identifier: GPL-3.0-or-later
"""The local cloud: an EC2-compatible endpoint on loopback with real instances."""
from __future__ import annotations
