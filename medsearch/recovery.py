"""Putting collection folders right after a killed build, swap or delete.

A build writes `.tmp-<name>-<hex>`, a swap moves the previous folder to `.old-<name>-<hex>`, a delete
renames the folder to `.del-<name>-<hex>` before removing it (see `home.sibling`); each belongs to
exactly the collection its name says. Tidying needs the collection's write lock, so a build under way
is never disturbed: it is skipped while another writer holds the lock. The encoded batches a killed build
keeps for its retry (`layout.encode_cache`) go once nobody has retried it for STALE_DAYS.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from medsearch.home import discard, leftovers
from medsearch.layout import encode_caches
from medsearch.locks import CollectionBusy, writing

STALE_DAYS = 7


def tidy(target: Path) -> None:
    """Finish what killed writers left of collection folder `target`: put back the previous folder of a swap
    killed between its two renames, and remove temporary, superseded and deleted folders."""
    if target.name not in leftovers(target.parent):
        return
    try:
        with writing(target.name, "rebuild", target.parent):
            _settle(target)
    except CollectionBusy:
        pass  # a writer is at work: what looks left over may be its build


def tidy_all(root: Path) -> None:
    """`tidy` every collection under the home folder `root` that has something left over, and drop stale
    encoded batches."""
    for name in leftovers(root):
        tidy(root / name)
    drop_stale_batches(root)


def drop_stale_batches(root: Path, now: float | None = None) -> list[str]:
    """Remove the encoded batches of killed builds whose newest batch is older than STALE_DAYS (holding the
    collection's lock, so a build under way keeps its own); the collection names whose batches went."""
    limit, dropped = (now or time.time()) - STALE_DAYS * 86_400, []
    folders = [p for p in encode_caches(root).iterdir() if p.is_dir()] if encode_caches(root).is_dir() else []
    for folder in folders:
        newest = max(p.stat().st_mtime for p in [folder, *folder.iterdir()] if p.is_dir())  # a batch written
        # into a model's folder updates that folder's time: no need to look at every batch
        if newest >= limit:
            continue
        try:
            with writing(folder.name, "rebuild", root):
                shutil.rmtree(folder, ignore_errors=True)
            dropped.append(folder.name)
        except CollectionBusy:
            pass
    return dropped


def _settle(target: Path) -> None:
    found = leftovers(target.parent).get(target.name, {})
    backups = sorted(found.get("old", []), key=lambda p: p.stat().st_mtime)
    if backups and not target.exists():
        os.rename(backups.pop(), target)
    for backup in backups:
        discard(backup, target)
    for path in found.get("tmp", []) + found.get("del", []):
        shutil.rmtree(path, ignore_errors=True)
