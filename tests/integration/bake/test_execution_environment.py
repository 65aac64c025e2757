# SPDX-License-Identifier: GPL-3.0-or-later
"""meta/execution-environment.yml: ansible-builder makes a build context from it."""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from bake_helpers import BIN, REPO


def test_ansible_builder_creates_a_context(tmp_path: Path) -> None:
    context = tmp_path / "context"
    run = subprocess.run(
        [str(BIN / "ansible-builder"), "create", "-f", str(REPO / "meta/execution-environment.yml"),
         "--context", str(context)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'ARG EE_BASE_IMAGE="quay.io/fedora/fedora:41"' in (context / "Dockerfile").read_text()
    build = context / "_build"
    assert "paramiko" in (build / "requirements.txt").read_text()
    assert "boto3" in (build / "requirements.txt").read_text()
    assert "openssh-clients [platform:rpm]" in (build / "bindep.txt").read_text()
    collections = {c["name"] for c in yaml.safe_load((build / "requirements.yml").read_text())["collections"]}
    assert collections == {"amazon.aws", "bakery.ami"}


def test_collection_level_dependency_files_match_the_root_ones() -> None:
    # Another EE that installs this collection reads the same names relative to the collection root.
    assert (REPO / "meta/requirements.txt").read_text() == (REPO / "requirements.txt").read_text()
    assert (REPO / "meta/bindep.txt").read_text() == (REPO / "bindep.txt").read_text()
