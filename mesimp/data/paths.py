"""Where the data lives: the config's data.root, else $MESIMP_DATA, else ./data."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_data_root(configured: str | None) -> Path:
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("MESIMP_DATA") or "data").expanduser()
