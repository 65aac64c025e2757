# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline pip bootstrap for ansible-test's virtual environments.

ansible-test bootstraps pip in each new venv with a script it downloads from a host outside
the package registries; this stand-in does the same from the standard library's ensurepip
and then installs the pinned packages ansible-test asks for from the package index.
"""
from __future__ import annotations

import subprocess
import sys

# get-pip's own switches; the pinned package list needs no translation.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
# In a child process: ensurepip blanks pip's configuration (index, certificates) in its own environment.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])
