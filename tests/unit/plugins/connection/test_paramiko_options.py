# SPDX-License-Identifier: GPL-3.0-or-later
"""The connection registers its options itself, under the name ansible-core's loader uses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.bakery.ami.plugins.plugin_utils import _plugin_options

REPO = Path(__file__).resolve().parents[4]

# Runs in a fresh interpreter, so nothing else has registered the plugin's options yet.
_PROBE = r"""
import importlib, io, json, yaml
from ansible import constants as C
from ansible.parsing.yaml.loader import AnsibleLoader
from ansible.plugins.loader import connection_loader, init_plugin_loader
from ansible.playbook.play_context import PlayContext
init_plugin_loader()
name = "ansible_collections.bakery.ami.plugins.connection.paramiko"
before = C.config.has_configuration_definition("connection", name)
module = importlib.import_module(name)
after_import = C.config.has_configuration_definition("connection", name)
connection = connection_loader.get("bakery.ami.paramiko", PlayContext(), io.StringIO())
ours = C.config.get_configuration_definitions("connection", connection._load_name)
theirs = yaml.load(module.DOCUMENTATION, Loader=AnsibleLoader)["options"]
connection.set_options(var_options={"ansible_port": 2222, "ansible_paramiko_idle_timeout": 5})
print(json.dumps({"before": before, "after_import": after_import, "load_name": connection._load_name,
                  "same": ours == theirs, "port": connection.get_option("port"),
                  "idle": connection.get_option("idle_timeout"), "checking": connection.get_option("host_key_checking")}))
"""


def test_options_are_registered_on_import_and_match_the_documentation() -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    run = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["before"] is False
    assert found["after_import"] is True
    assert found["load_name"] == "ansible_collections.bakery.ami.plugins.connection.paramiko"
    assert found["same"] is True
    assert (found["port"], found["idle"], found["checking"]) == (2222, 5, True)


def test_documentation_it_cannot_register_is_left_to_ansible() -> None:
    class Config:
        def __init__(self) -> None:
            self.defs: dict[tuple[str, str], object] = {}

        def has_configuration_definition(self, plugin_type: str, name: str) -> bool:
            return (plugin_type, name) in self.defs

        def initialize_plugin_configuration_definitions(self, plugin_type: str, name: str, defs: object) -> None:
            self.defs[(plugin_type, name)] = defs

    config = Config()
    original = _plugin_options.C.config
    _plugin_options.C.config = config
    try:
        templated = "options:\n  a:\n    default: '{{ x }}'\n"
        fragment = "extends_documentation_fragment: [a.b.c]\noptions:\n  a:\n    default: 1\n"
        plain = "options:\n  a:\n    default: 1\n    vars: [{name: ansible_a}]\n"
        assert _plugin_options.register_options("connection", "t", templated) is False
        assert _plugin_options.register_options("connection", "f", fragment) is False
        assert _plugin_options.register_options("connection", "p", plain) is True
    finally:
        _plugin_options.C.config = original
    assert config.defs == {("connection", "p"): {"a": {"default": 1, "vars": [{"name": "ansible_a"}]}}}
