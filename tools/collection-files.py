#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The checkout's files that go into the collection tarball, NUL-separated on stdout.

The one list of what stays out is galaxy.yml's build_ignore; this applies it the way
`ansible-galaxy collection build` does (fnmatch against each path relative to the root; a
matching directory leaves out everything under it), to the files git tracks or would track.
"""
from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# What ansible-galaxy always leaves out, besides build_ignore.
ALWAYS = ["galaxy.yml", "galaxy.yaml", "*.pyc", "*.retry", "tests/output", "*/__pycache__", "__pycache__"]


def patterns() -> list[str]:
    config = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    return ALWAYS + list(config.get("build_ignore") or [])


def ignored(path: str, globs: list[str]) -> bool:
    parts = path.split("/")
    return any(fnmatch.fnmatch("/".join(parts[:n]), g) for n in range(1, len(parts) + 1) for g in globs)


def main() -> int:
    globs = patterns()
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for path in listed:
        if path and not ignored(path, globs) and ((ROOT / path).exists() or (ROOT / path).is_symlink()):
            sys.stdout.write(path + "\0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
