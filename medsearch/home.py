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
_LEFTOVER = re.compile(rf"\.(tmp|old|del)-({_NAME.pattern})-[0-9a-f]{{8}}")


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


def sibling(target: Path, kind: str) -> Path:
    """A new hidden sibling of `target`: `.tmp-` (a build under way), `.old-` (the folder a swap is replacing)
    or `.del-` (being deleted), then `target`'s name and 8 hex digits, so `leftovers` reads the name back exactly."""
    return target.parent / f".{kind}-{target.name}-{uuid.uuid4().hex[:8]}"


def leftovers(root: Path) -> dict[str, dict[str, list[Path]]]:
    """The hidden siblings (see `sibling`) in `root`: {exact name they belong to: {kind: folders}}."""
    found: dict[str, dict[str, list[Path]]] = {}
    for path in root.iterdir() if root.is_dir() else ():
        match = _LEFTOVER.fullmatch(path.name)
        if match and path.is_dir():
            found.setdefault(match[2], {}).setdefault(match[1], []).append(path)
    return found


def discard(folder: Path, owner: Path) -> None:
    """Remove `folder` (`owner` or one of its siblings) for good: it is renamed to a `.del-` sibling of `owner`
    first, so a process killed during the removal never leaves a folder that recovery would put back."""
    gone = sibling(owner, "del")
    os.rename(folder, gone)
    shutil.rmtree(gone, ignore_errors=True)


def replace_folder(target: Path, build: Callable[[Path], None]) -> None:
    """Run `build` on a fresh temporary sibling folder, then swap it in for `target`.

    A failed build leaves `target` untouched; a process killed between the two renames leaves
    the previous folder as `.old-<name>-<hex>`, which `recovery.tidy` puts back.
    """
    tmp = sibling(target, "tmp")
    tmp.mkdir(parents=True)
    try:
        build(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = sibling(target, "old")
    if target.exists():
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        if old.exists():
            os.rename(old, target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old.exists():
        discard(old, target)
