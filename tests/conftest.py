# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import sys
from pathlib import Path

# collections/ holds a link back to the repo root, so the collection imports as
# ansible_collections.bakery.ami.* straight from the checkout.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))
# Helpers shared by the suites' conftests (moto_ec2_rules).
sys.path.insert(0, str(REPO / "tests"))
