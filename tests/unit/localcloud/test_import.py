# SPDX-License-Identifier: GPL-3.0-or-later
"""Importing the local cloud changes nothing in the importing process's environment."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# In a fresh interpreter, so modules an earlier test imported cannot hide a change.
IMPORT_ALL = """
import importlib, os, pkgutil, sys
before = dict(os.environ)
import localcloud
names = [m.name for m in pkgutil.walk_packages(localcloud.__path__, "localcloud.") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(len(names), "modules")
sys.exit(f"importing the local cloud changed {changed}" if changed else 0)
"""


def test_importing_every_module_leaves_the_environment_alone() -> None:
    run = subprocess.run([sys.executable, "-c", IMPORT_ALL], cwd=REPO, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(run.stdout.split()[0]) > 10, run.stdout
