# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import sys

from localcloud.cli import main

sys.exit(main())
