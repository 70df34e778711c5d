"""Where MedSearch keeps its data: collections, and converted models under `.models/`."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def medsearch_home(home: str | Path | None = None) -> Path:
    """The folder holding all collections: `home`, else $MEDSEARCH_HOME, else ~/.medsearch."""
    return Path(home or os.environ.get("MEDSEARCH_HOME") or "~/.medsearch").expanduser()


def replace_folder(target: Path, build: Callable[[Path], None]) -> None:
    """Run `build` on a fresh temporary sibling folder, then swap it in for `target`.

    A failed build leaves `target` untouched; a process killed between the two renames leaves
    the previous folder as `.old-<name>-*`, which `Collection.open` puts back.
    """
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        build(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.parent / f".old-{target.name}-{uuid.uuid4().hex[:8]}"
    if target.exists():
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        if old.exists():
            os.rename(old, target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
