"""Putting collection folders right after a killed build, swap or delete.

A build writes `.tmp-<name>-<hex>`, a swap moves the previous folder to `.old-<name>-<hex>`, a delete
renames the folder to `.del-<name>-<hex>` before removing it (see `home.sibling`); each belongs to
exactly the collection its name says. Tidying needs the collection's write lock, so a build under way
is never disturbed: it is skipped while another writer holds the lock.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from medsearch.home import discard, leftovers
from medsearch.locks import CollectionBusy, writing


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
    """`tidy` every collection under the home folder `root` that has something left over."""
    for name in leftovers(root):
        tidy(root / name)


def _settle(target: Path) -> None:
    found = leftovers(target.parent).get(target.name, {})
    backups = sorted(found.get("old", []), key=lambda p: p.stat().st_mtime)
    if backups and not target.exists():
        os.rename(backups.pop(), target)
    for backup in backups:
        discard(backup, target)
    for path in found.get("tmp", []) + found.get("del", []):
        shutil.rmtree(path, ignore_errors=True)
