# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
"""The filter ami_name_problem: why a name is not a valid AMI name, or '' when it is.

The same rule ami_create and ami_copy check before any AWS call, so a playbook can refuse a bad
name before anything is launched.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.bakery.ami.plugins.module_utils._images import ami_name_problem as _problem


def ami_name_problem(name: Any) -> str:
    # bool is an int too, and no name.
    if isinstance(name, bool) or not isinstance(name, (str, int)):
        raise AnsibleFilterError(f"ami_name_problem takes an AMI name (a string), not {type(name).__name__}")
    problem = _problem(str(name))
    if not problem:
        return ""
    return f"{problem[0].upper()}{problem[1:]}."


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"ami_name_problem": ami_name_problem}
