# SPDX-License-Identifier: GPL-3.0-or-later
"""The ami_name_problem filter: the modules' AMI name rule, for playbooks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.bakery.ami.plugins.filter.ami_name_problem import FilterModule, ami_name_problem


@pytest.mark.parametrize("name", ["web", "web-2026.11.30", "base (x86_64) [prod] @team/o'neil", "a" * 128, 2027])
def test_a_valid_name_gives_an_empty_string(name: object) -> None:
    assert ami_name_problem(name) == ""


@pytest.mark.parametrize(
    "name, reason",
    [
        ("ab", "The AMI name 'ab' is too short: it needs 3 to 128 characters."),
        ("a" * 129, "The AMI name 'aaaaaaaaaaaaaaaaaaaa'... is 129 characters long: at most 128 are allowed."),
        ("web:1", "The AMI name 'web:1' contains ':': only letters, digits, spaces and ( ) [ ] . / - ' @ _ are allowed."),
        ("", "The AMI name '' is too short: it needs 3 to 128 characters."),
    ],
)
def test_an_invalid_name_gives_one_sentence_naming_it(name: str, reason: str) -> None:
    assert ami_name_problem(name) == reason


@pytest.mark.parametrize("value", [None, ["web"], {"name": "web"}, True])
def test_a_name_is_required(value: object) -> None:
    with pytest.raises(AnsibleFilterError, match="takes an AMI name"):
        ami_name_problem(value)


def test_the_filter_is_registered_under_its_name() -> None:
    assert FilterModule().filters() == {"ami_name_problem": ami_name_problem}


# In a fresh interpreter: the plugin loader's collection finder changes how the process imports.
_TEMPLATE = r"""
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
init_plugin_loader([sys.argv[1]])
templar = Templar(loader=DataLoader(), variables={"bad": "web:1", "good": "web-2026.11"})
print(json.dumps([templar.template(trust_as_template("{{ %s | bakery.ami.ami_name_problem }}" % v)) for v in ("bad", "good")]))
"""


def test_the_filter_runs_in_a_template_under_its_fqcn() -> None:
    collections = Path(__file__).resolve().parents[4] / "collections"
    out = subprocess.run([sys.executable, "-c", _TEMPLATE, str(collections)], capture_output=True, text=True, check=True).stdout
    bad, good = json.loads(out.splitlines()[-1])
    assert bad == "The AMI name 'web:1' contains ':': only letters, digits, spaces and ( ) [ ] . / - ' @ _ are allowed."
    assert good == ""
