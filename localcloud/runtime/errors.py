# SPDX-License-Identifier: GPL-3.0-or-later
"""The one exception the instance runtime raises for expected failures."""
from __future__ import annotations


class RuntimeFailure(Exception):
    """An instance runtime operation failed; the message is one sentence for the user."""
