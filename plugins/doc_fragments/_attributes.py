# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""What each attribute a module of this collection declares means.

A module extends this fragment and gives each attribute its own `support` (and `details`).
"""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode, and then reports what would change without changing anything.
  diff_mode:
    description: Returns the state before and after the task (in check mode, what it would be) when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second run reports no change.
      - This assumes that the resources the module manages have not been changed in between by anything else.
  action_group:
    description:
      - Use C(group/bakery.ami.aws) (which extends C(group/amazon.aws.aws)) in C(module_defaults) to set this
        module's AWS connection options with those of the other AWS modules.
    support: full
    membership:
      - bakery.ami.aws
"""
