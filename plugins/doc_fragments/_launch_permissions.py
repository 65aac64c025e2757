# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""Who may launch an image: the options of every module that shares images."""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  launch_permissions:
    description:
      - Who may launch each image the module makes or finds. An existing image's launch permissions are made
        exactly these (permissions not listed are removed).
      - Not given means the launch permissions are left as they are.
    type: dict
    suboptions:
      user_ids:
        description: AWS account ids (12 digits).
        type: list
        elements: str
      group_names:
        description: Groups; only C(all) exists. It makes the image public, and requires O(allow_public=true).
        type: list
        elements: str
      org_arns:
        description: AWS Organizations ARNs.
        type: list
        elements: str
      org_unit_arns:
        description: Organizational unit ARNs.
        type: list
        elements: str
  allow_public:
    description:
      - Must be V(true) for O(launch_permissions.group_names) to contain C(all), which makes the images public.
    type: bool
    default: false
"""
