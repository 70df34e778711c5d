"""Failures of the machine rather than of the input: a read-only or full disk, a folder without write
permission, a store SQLite cannot write. `storage_reason` gives a code (the app words it in the UI
language); `storage_message` is the CLI's one English line.

    try:
        ...
    except STORAGE_ERRORS as exc:
        print(storage_message(exc))
"""

from __future__ import annotations

import errno
import sqlite3

STORAGE_ERRORS = (OSError, sqlite3.Error)
_ERRNO = {errno.EROFS: "read_only", errno.ENOSPC: "full", errno.EDQUOT: "quota", errno.EACCES: "permission",
          errno.EPERM: "permission"}
_SQLITE = {"SQLITE_READONLY": "read_only", "SQLITE_CANTOPEN": "cannot_open", "SQLITE_FULL": "full",
           "SQLITE_IOERR": "io"}
REASONS = {"read_only": "the disk is read-only", "full": "the disk is full", "quota": "the disk quota is used up",
           "permission": "permission denied", "cannot_open": "it cannot be opened (a read-only folder?)",
           "io": "the disk failed to read or write"}


def storage_reason(exc: OSError | sqlite3.Error) -> tuple[str, str, str]:
    """(where: 'store' or 'file', reason: a key of REASONS or 'other', the path when known)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorname", "") or ""
        return "store", next((why for name, why in _SQLITE.items() if code.startswith(name)), "other"), ""
    return "file", _ERRNO.get(exc.errno or 0, "other"), str(exc.filename or "")


def first_line(exc: BaseException) -> str:
    """What an error says, on one line (the strerror of an OSError, without its path)."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return (text.splitlines() or [type(exc).__name__])[0]


def storage_message(exc: OSError | sqlite3.Error) -> str:
    """A one-line English message for an OSError or a SQLite error, naming the path when it is known."""
    where, reason, path = storage_reason(exc)
    why = REASONS.get(reason) or first_line(exc)
    if where == "store":
        return f"Cannot write MedSearch's store: {why}."
    return f"Cannot use{f' {path}' if path else ''}: {why}."
