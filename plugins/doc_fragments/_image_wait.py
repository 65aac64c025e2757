# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Waiting for the images a module makes to become available."""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  wait:
    description:
      - Wait until each image the module makes is available before returning.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait for the images, in all.
    type: int
    default: 1800
"""
