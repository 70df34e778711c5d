"""One-line messages for failures of the machine rather than of the input: a read-only or full disk,
a folder without write permission, a store SQLite cannot write.

    try:
        ...
    except STORAGE_ERRORS as exc:
        print(storage_message(exc))
"""

from __future__ import annotations

import errno
import sqlite3

STORAGE_ERRORS = (OSError, sqlite3.Error)
_WHY = {errno.EROFS: "the disk is read-only", errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
        errno.EACCES: "permission denied", errno.EPERM: "permission denied"}
_SQLITE_WHY = {"SQLITE_READONLY": "it is read-only", "SQLITE_CANTOPEN": "it cannot be opened (a read-only folder?)",
               "SQLITE_FULL": "the disk is full", "SQLITE_IOERR": "the disk failed to read or write"}


def storage_message(exc: OSError | sqlite3.Error) -> str:
    """A one-line message for an OSError or a SQLite error, naming the path when it is known."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorname", "") or ""
        why = next((text for name, text in _SQLITE_WHY.items() if code.startswith(name)), None)
        return f"Cannot write MedSearch's store: {why or (str(exc).splitlines() or [type(exc).__name__])[0]}."
    why = _WHY.get(exc.errno or 0) or exc.strerror or type(exc).__name__
    where = f" {exc.filename}" if exc.filename else ""
    return f"Cannot use{where}: {why}."
