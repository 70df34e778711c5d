"""JSON (a list of objects, or an object of objects) and JSON Lines files."""

from __future__ import annotations

import json
from typing import Any

from medsearch.ingest.columns import rows_to_documents, union_columns
from medsearch.ingest.common import IngestOptions, fail
from medsearch.ingest.encoding import decode_bytes
from medsearch.limits import limited
from medsearch.records import Document


def parse_json(text: str, name: str, line: int | None = None) -> Any:
    """Parse one JSON value, reporting where a syntax error is; JSON nested too deeply is a clear error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise fail(name, "bad_json", line=line or e.lineno, column=e.colno, why=e.msg) from e
    except RecursionError as e:
        raise fail(name, "deep_json") from e


def load_json(data: bytes, name: str) -> Any:
    """Parse a JSON file."""
    return parse_json(decode_bytes(data, name), name)


def load_jsonl(data: bytes, name: str) -> list[dict[str, Any]]:
    """Parse JSON Lines: one object per non-blank line, at most `limits.max_rows()` of them."""
    rows = []
    numbered = ((n, line) for n, line in enumerate(decode_bytes(data, name).splitlines(), start=1) if line.strip())
    for n, line in limited(numbered, name):
        row = parse_json(line, name, n)
        if not isinstance(row, dict):
            raise fail(name, "not_object", n=n)
        rows.append(row)
    return rows


def json_rows(value: Any, name: str) -> tuple[list[dict[str, Any]], list[str] | None]:
    """Rows and their keys (for an object of objects) from parsed JSON.

    Accepts a list of objects, a list of strings, an object of objects, or an
    object with one list of objects inside (e.g. {"data": [...]}).
    """
    if value in ({}, []):
        return [], None
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if value and all(isinstance(v, dict) for v in value.values()):
            return list(value.values()), [str(k) for k in value]
        if len(lists) == 1:
            value = lists[0]
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return [{"text": v} for v in value], None
        if all(isinstance(v, dict) for v in value):
            return value, None
    raise fail(name, "not_records")


def json_documents(value: Any, name: str, options: IngestOptions) -> list[Document]:
    """One document per record of parsed JSON (see `json_rows`)."""
    rows, keys = json_rows(value, name)
    if not rows:
        raise fail(name, "no_records")
    return rows_to_documents(rows, union_columns(rows), name=name, options=options, keys=keys)


def read_jsonl(data: bytes, name: str, options: IngestOptions) -> list[Document]:
    """One document per line of a JSON Lines file."""
    rows = load_jsonl(data, name)
    if not rows:
        raise fail(name, "no_records")
    return rows_to_documents(rows, union_columns(rows), name=name, options=options)
