"""Where MedSearch keeps its data: collections, and converted models under `.models/`."""

from __future__ import annotations

import os
from pathlib import Path


def medsearch_home(home: str | Path | None = None) -> Path:
    """The folder holding all collections: `home`, else $MEDSEARCH_HOME, else ~/.medsearch."""
    return Path(home or os.environ.get("MEDSEARCH_HOME") or "~/.medsearch").expanduser()
