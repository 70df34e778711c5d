"""One writer per collection: a file lock (the `filelock` package) held around every build, append,
replace, model addition and delete, across threads and processes.

The lock lives in `<MEDSEARCH_HOME>/.locks/<name>.lock`, outside the collection folder that a build
swaps. Beside it, `<name>.json` says what the holder is doing and since when, so whoever finds the
collection busy is told so (`CollectionBusy`). The same thread may take the lock again (an append
holds it while the rebuild inside it takes it too).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from medsearch.home import medsearch_home
from medsearch.records import MedSearchError

ACTIONS = ("build", "append", "delete_docs", "rebuild", "add_model", "delete")
_LOCKS: dict[Path, FileLock] = {}
_GUARD = threading.Lock()


class CollectionBusy(MedSearchError):
    """Another writer holds the collection; `action` and `since` (HH:MM) say what it does."""

    def __init__(self, name: str, action: str, since: str) -> None:
        self.name, self.action, self.since = name, action, since
        super().__init__(f"busy: '{name}' is being changed ({action}) since {since}; try again when it is done.")


def _lock(path: Path) -> FileLock:
    """One FileLock object per path and process (its counter makes it re-entrant within a thread)."""
    with _GUARD:
        return _LOCKS.setdefault(path, FileLock(path))


def _holder(info: Path) -> tuple[str, str]:
    try:
        found = json.loads(info.read_text(encoding="utf-8"))
        return str(found["action"]), str(found["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return "build", "?"


@contextmanager
def writing(name: str, action: str, home: str | Path | None = None, wait: float = 0.0) -> Iterator[None]:
    """Hold collection `name`'s write lock; after `wait` seconds of another writer, raise CollectionBusy."""
    root = medsearch_home(home) / ".locks"
    root.mkdir(parents=True, exist_ok=True)
    lock, info = _lock(root / f"{name}.lock"), root / f"{name}.json"
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise CollectionBusy(name, *_holder(info)) from None
    outermost = lock.lock_counter == 1
    if outermost:
        info.write_text(json.dumps({"action": action, "since": time.strftime("%H:%M"), "pid": os.getpid()}),
                        encoding="utf-8")
    try:
        yield
    finally:
        if outermost:
            info.unlink(missing_ok=True)
        lock.release()

