"""Who changed what: one line per build, append, rebuild, model addition, deletion and training run.

`<MEDSEARCH_HOME>/audit.jsonl`, appended to by the app and the CLI. Each line is one `write` to a file
opened with O_APPEND, so lines from several processes do not interleave.
What people label, rate and ask is recorded with their name in the collection's store instead.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from pathlib import Path

from medsearch.home import medsearch_home
from medsearch.jsonl import read_jsonl


def audit_path(home: str | Path | None = None) -> Path:
    return medsearch_home(home) / "audit.jsonl"


def cli_user() -> str:
    """Who runs a CLI command: the account name, marked as coming from the command line."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:{os.getuid()}"


def record(action: str, target: str, by: str, home: str | Path | None = None, **details: object) -> None:
    """Append one change: `action` (build, append, rebuild, add_model, delete, train, cancel_run, use_model)
    on `target` (a collection or run) by `by`, with small `details`."""
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "action": action, "target": target,
                       "by": by, **details}, ensure_ascii=False)
    path = audit_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def history(home: str | Path | None = None, limit: int = 200) -> list[dict]:
    """The newest `limit` changes, newest first."""
    path = audit_path(home)
    if not path.is_file():
        return []
    return read_jsonl(path)[-limit:][::-1]
