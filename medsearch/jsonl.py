"""JSON Lines files: one JSON object per line, UTF-8, blank lines ignored.

MedSearch writes its own JSONL files (BEIR folders, exports, training runs) with `write_jsonl` and reads them, or any
JSONL file on disk, with `read_jsonl`. Uploaded files go through `medsearch.ingest.jsonfile.load_jsonl` instead, which
adds the upload limits and reasons in both languages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medsearch.records import MedSearchError


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file, in order; a line that is not JSON is a MedSearchError naming it."""
    path = Path(path)
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise MedSearchError(f"{path.name} line {n} is not valid JSON: {exc.msg}.") from exc
    return rows


def jsonl_text(rows: Iterable[Any]) -> str:
    """Rows as JSON Lines text (non-ASCII characters kept as they are)."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write rows as a JSONL file; returns how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count
