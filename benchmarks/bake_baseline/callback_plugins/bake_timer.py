# SPDX-License-Identifier: GPL-3.0-or-later
"""Writes when each play and task started (and when the run ended) to $BAKE_BENCH_TIMING as JSON.

Used by benchmarks/bake.py for both variants, to measure the customization's own time and to
show where the rest goes. Tasks run one after another here (linear strategy, one host at a
time per play), so a task lasts until the next one starts.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bake_timer
type: aggregate
short_description: record play and task start times for the bake benchmark
description: Writes a JSON list of play and task start times to the file named by BAKE_BENCH_TIMING.
requirements: [enabled in callbacks_enabled]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bake_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._events: list[dict[str, Any]] = []
        self._play = ""

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play.get_name()
        self._events.append({"kind": "play", "play": self._play, "time": time.time()})

    def _task(self, task: Any) -> None:
        role = task._role.get_name() if getattr(task, "_role", None) else ""
        self._events.append({"kind": "task", "play": self._play, "task": task.get_name(), "role": role,
                             "action": task.action, "time": time.time()})

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task(task)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._task(task)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._events.append({"kind": "end", "time": time.time()})
        target = os.environ.get("BAKE_BENCH_TIMING")
        if target:
            with open(target, "w", encoding="utf-8") as handle:
                json.dump(self._events, handle)
