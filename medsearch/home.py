"""Where MedSearch keeps its data: collections, and converted models under `.models/`."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from medsearch.records import MedSearchError

_NAME = re.compile(r"[\w\u4e00-\u9fff][\w.\-\u4e00-\u9fff]{0,63}")


def medsearch_home(home: str | Path | None = None) -> Path:
    """The folder holding all collections: `home`, else $MEDSEARCH_HOME, else ~/.medsearch."""
    return Path(home or os.environ.get("MEDSEARCH_HOME") or "~/.medsearch").expanduser()


def folder_name(name: str, what: str) -> str:
    """A name usable as one folder under the home (collections, models): letters, digits, Chinese, '_',
    '-', '.', no path parts, at most 64 characters; `what` names the thing in the error."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise MedSearchError(
            f"Invalid {what} name '{name}': use letters, digits, Chinese characters, '_', '-' or '.' "
            "(no slashes, no '..', at most 64 characters).")
    return name


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
