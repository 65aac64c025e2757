# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The tag options of the modules that make images."""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  tags:
    description:
      - Tags for each image the module makes, and for that image's snapshots.
      - They are given in the call that makes the image, so the image is never left untagged.
      - An image that already exists and is returned instead of a new one gets the tags of O(tags) it lacks
        or has with another value.
    type: dict
    aliases: [resource_tags]
"""

    # With DOCUMENTATION, for a module that can also remove the tags it was not given.
    PURGE = r"""
options:
  purge_tags:
    description:
      - Remove the tags of an existing image, and of its snapshots, that are not in O(tags).
      - Tags whose key starts with C(aws:) are never removed.
    type: bool
    default: true
"""
