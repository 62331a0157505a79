"""Structured log lines (one JSON object per line on stdout, which Docker's log rotation keeps)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def emit(agent: str, event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"time": round(time.time(), 3), "agent": agent, "event": event, **fields}) + "\n")
    sys.stdout.flush()
