#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: contributors to bakery.ami
from __future__ import annotations

DOCUMENTATION = r"""
---
module: local_cloud
short_description: Start or stop the bakery local cloud
description:
  - Starts the local cloud (an EC2-compatible endpoint on loopback with real instances) as a daemon,
    or stops it together with every instance it runs.
  - Starting a cloud that already runs changes nothing and returns its endpoint.
  - Kept outside the collection; repository playbooks find it through C(library) in C(ansible.cfg).
  - Runs on the machine that hosts the cloud (normally C(localhost)) with an interpreter that has the
    repository's requirements (the repository's C(.venv/bin/python)).
options:
  state:
    description: Whether the cloud should run.
    type: str
    choices: [started, stopped]
    default: started
  state_dir:
    description: Directory for the cloud's state (endpoint file, request log, instances, image layers).
    type: path
    default: .localcloud
  source:
    description:
      - Directory that holds the C(localcloud) package (the repository root).
      - Defaults to the environment variable E(LOCALCLOUD_SOURCE), else the current directory.
    type: path
  port:
    description: TCP port on 127.0.0.1 for the API; V(0) picks a free one.
    type: int
    default: 0
  settings:
    description: Latency and fault settings applied at start (see the local cloud README).
    type: dict
author:
  - bakery.ami maintainers
"""

EXAMPLES = r"""
---
- name: Start the local cloud
  local_cloud:
    state: started
    state_dir: "{{ playbook_dir }}/../.localcloud"
    source: "{{ playbook_dir }}/.."
  register: cloud

- name: Use it
  amazon.aws.ec2_ami_info:
    filters:
      name: bakery-local-base-*
  environment: "{{ cloud.env }}"

- name: Stop it and every instance
  local_cloud:
    state: stopped
    state_dir: "{{ playbook_dir }}/../.localcloud"
    source: "{{ playbook_dir }}/.."
"""

RETURN = r"""
endpoint_url:
  description: The API endpoint (empty when stopped).
  returned: always
  type: str
  sample: http://127.0.0.1:40123
env:
  description: Environment a client needs (endpoint, fake credentials, region); empty when stopped.
  returned: always
  type: dict
state_dir:
  description: The absolute state directory.
  returned: always
  type: str
base_image_name:
  description: Name of the base image registered in every region (empty when stopped).
  returned: always
  type: str
base_image_parameter:
  description: SSM parameter naming the base image id (empty when stopped).
  returned: always
  type: str
"""

import json
import os
import sys
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def _load_cli(module: AnsibleModule, source: str) -> Any:
    if not os.path.isfile(os.path.join(source, "localcloud", "cli.py")):
        module.fail_json(msg=f"No localcloud package under {source}; set source to the repository root.")
    if source not in sys.path:
        sys.path.insert(0, source)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
    from localcloud import cli  # pylint: disable=import-error

    return cli


def _result(info: dict[str, Any] | None, state_dir: str) -> dict[str, Any]:
    info = info or {}
    return {
        "endpoint_url": info.get("endpoint_url", ""),
        "env": info.get("env", {}),
        "state_dir": state_dir,
        "base_image_name": info.get("base_image_name", ""),
        "base_image_parameter": info.get("base_image_parameter", ""),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["started", "stopped"], "default": "started"},
            "state_dir": {"type": "path", "default": ".localcloud"},
            "source": {"type": "path"},
            "port": {"type": "int", "default": 0},
            "settings": {"type": "dict"},
        },
        supports_check_mode=True,
    )
    source = os.path.abspath(module.params["source"] or os.environ.get("LOCALCLOUD_SOURCE") or os.getcwd())
    state_dir = os.path.abspath(module.params["state_dir"])
    cli = _load_cli(module, source)
    from pathlib import Path

    running = cli.read_endpoint(Path(state_dir))
    if module.params["state"] == "stopped":
        if running and not module.check_mode:
            try:
                cli.stop(Path(state_dir))
            except cli.CloudError as error:
                module.fail_json(msg=str(error))
        module.exit_json(changed=running is not None, **_result(None, state_dir))
    if running or module.check_mode:
        module.exit_json(changed=running is None, **_result(running, state_dir))
    settings_file = None
    if module.params["settings"]:
        handle, name = tempfile.mkstemp(prefix="localcloud-settings-", suffix=".json")
        with os.fdopen(handle, "w") as stream:
            json.dump(module.params["settings"], stream)
        settings_file = Path(name)
    try:
        info = cli.start(Path(state_dir), port=module.params["port"], settings_file=settings_file)
    except cli.CloudError as error:
        module.fail_json(msg=str(error))
    finally:
        if settings_file:
            settings_file.unlink()
    module.exit_json(changed=True, **_result(info, state_dir))


if __name__ == "__main__":
    main()
